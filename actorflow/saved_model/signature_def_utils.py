"""SignatureDefs: a model's named inputs and outputs (TF1's tf.saved_model.signature_def_utils)."""

from __future__ import annotations

from typing import Any

from actorflow.meta_graph import protos
from actorflow.saved_model import signature_constants as sc
from actorflow.saved_model.utils import build_tensor_info


def build_signature_def(inputs: dict[str, Any] | None = None,
                        outputs: dict[str, Any] | None = None,
                        method_name: str | None = None) -> Any:
    """A SignatureDef of TensorInfo maps (build them with utils.build_tensor_info)."""
    sig = protos()["SignatureDef"]()
    for key, info in (inputs or {}).items():
        sig.inputs[key].CopyFrom(info)
    for key, info in (outputs or {}).items():
        sig.outputs[key].CopyFrom(info)
    if method_name is not None:
        sig.method_name = method_name
    return sig


def predict_signature_def(inputs: dict[str, Any], outputs: dict[str, Any]) -> Any:
    """A Predict SignatureDef of tensors keyed by name."""
    if not inputs:
        raise ValueError("Prediction inputs cannot be None or empty.")
    if not outputs:
        raise ValueError("Prediction outputs cannot be None or empty.")
    return build_signature_def({k: build_tensor_info(t) for k, t in inputs.items()},
                               {k: build_tensor_info(t) for k, t in outputs.items()},
                               sc.PREDICT_METHOD_NAME)


def classification_signature_def(examples: Any, classes: Any, scores: Any) -> Any:
    """A Classify SignatureDef (input: serialized examples; outputs: classes and/or scores)."""
    if classes is None and scores is None:
        raise ValueError("Classification classes and scores cannot both be None.")
    outs = {}
    if classes is not None:
        outs[sc.CLASSIFY_OUTPUT_CLASSES] = build_tensor_info(classes)
    if scores is not None:
        outs[sc.CLASSIFY_OUTPUT_SCORES] = build_tensor_info(scores)
    return build_signature_def({sc.CLASSIFY_INPUTS: build_tensor_info(examples)}, outs,
                               sc.CLASSIFY_METHOD_NAME)


def regression_signature_def(examples: Any, predictions: Any) -> Any:
    """A Regress SignatureDef (input: serialized examples; output: predictions)."""
    return build_signature_def({sc.REGRESS_INPUTS: build_tensor_info(examples)},
                               {sc.REGRESS_OUTPUTS: build_tensor_info(predictions)},
                               sc.REGRESS_METHOD_NAME)


def is_valid_signature(signature_def: Any) -> bool:
    """Whether a SignatureDef has a method name and named inputs and outputs."""
    return bool(signature_def.method_name and signature_def.inputs and signature_def.outputs)
