"""`af.saved_model`: TF1's SavedModel API (builder, loader, simple_save, signatures, tags).

A SavedModel directory holds `saved_model.pb`, TensorFlow's SavedModel message (a schema version
and one `MetaGraphDef` per tag set, from `actorflow.meta_graph`, each with its SignatureDefs),
and `variables/`, a V2 checkpoint written by a sharded `Saver`. The loader imports the MetaGraph
whose tags match into the session's graph, restores the variables and runs its main op.
"""

from actorflow.saved_model import (
    builder,
    loader,
    signature_constants,
    signature_def_utils,
    tag_constants,
    utils,
)
from actorflow.saved_model.builder import Builder, simple_save
from actorflow.saved_model.loader import load
from actorflow.saved_model.loader import maybe_saved_model_directory as contains_saved_model
from actorflow.saved_model.signature_constants import (
    CLASSIFY_INPUTS,
    CLASSIFY_METHOD_NAME,
    CLASSIFY_OUTPUT_CLASSES,
    CLASSIFY_OUTPUT_SCORES,
    DEFAULT_SERVING_SIGNATURE_DEF_KEY,
    PREDICT_INPUTS,
    PREDICT_METHOD_NAME,
    PREDICT_OUTPUTS,
    REGRESS_INPUTS,
    REGRESS_METHOD_NAME,
    REGRESS_OUTPUTS,
)
from actorflow.saved_model.signature_def_utils import (
    build_signature_def,
    classification_signature_def,
    is_valid_signature,
    predict_signature_def,
    regression_signature_def,
)
from actorflow.saved_model.tag_constants import GPU, SERVING, TPU, TRAINING
from actorflow.saved_model.utils import build_tensor_info, get_tensor_from_tensor_info

__all__ = [
    "builder", "loader", "signature_constants", "signature_def_utils", "tag_constants", "utils",
    "Builder", "simple_save", "load", "contains_saved_model", "build_signature_def",
    "classification_signature_def", "is_valid_signature", "predict_signature_def",
    "regression_signature_def", "build_tensor_info", "get_tensor_from_tensor_info", "GPU",
    "SERVING", "TPU", "TRAINING", "CLASSIFY_INPUTS", "CLASSIFY_METHOD_NAME",
    "CLASSIFY_OUTPUT_CLASSES", "CLASSIFY_OUTPUT_SCORES", "DEFAULT_SERVING_SIGNATURE_DEF_KEY",
    "PREDICT_INPUTS", "PREDICT_METHOD_NAME", "PREDICT_OUTPUTS", "REGRESS_INPUTS",
    "REGRESS_METHOD_NAME", "REGRESS_OUTPUTS",
]
