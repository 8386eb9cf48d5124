"""CTC and the NHWC pooling/morphology ops TF1 programs use beyond max/avg pooling:
`ctc_loss` (TF1 semantics: time-major logits, the last class is the blank, labels a
SparseTensor; its gradient is the kernel's second output times the incoming gradient, as
TF's), `ctc_greedy_decoder`, `ctc_beam_search_decoder`, `max_pool_with_argmax` (TF's flattened index
(y * width + x) * channels + c, plus batch * height * width * channels when
`include_batch_in_index`; its gradient scatters back to each argmax) and `dilation2d`
(greyscale morphological dilation, composed: a maximum over the filter taps of shifted,
padded inputs plus the tap's filter value, so its gradient is that of the maximum).
Kernels in `devices.kernels.ctc`.

    loss = af.nn.ctc_loss(sparse_labels, logits_tbc, seq_len)       # [batch]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actorflow.graph import Operation, Tensor, name_scope
from actorflow.op_def import apply_op, convert_to_tensor, define_op, no_gradient, register_gradient
from actorflow.ops import array_ops, math_ops, reduction_ops
from actorflow.ops.compare_ops import cast
from actorflow.sparse_tensor import SparseTensor
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["ctc_beam_search_decoder", "ctc_loss", "ctc_greedy_decoder", "max_pool_with_argmax",
           "dilation2d"]


def _ctc_infer(ins: list[Tensor], a: dict) -> list:
    x = ins[0]
    if x._shape is not None and len(x._shape) != 3:
        raise InvalidArgumentError(f"ctc_loss: inputs must be 3-D [max_time, batch, classes] "
                                   f"(time-major), got shape {list(x._shape)}")
    b = None if x._shape is None else x._shape[1]
    return [(x.dtype, (b,)), (x.dtype, x._shape)]


define_op("CTCLoss", infer=_ctc_infer)
define_op("CTCGreedyDecoder", infer=lambda ins, a: [
    (dtypes.int64, (None, 2)), (dtypes.int64, (None,)), (dtypes.int64, (2,)),
    (ins[0].dtype, (None if ins[0]._shape is None else ins[0]._shape[1], 1))])
no_gradient("CTCGreedyDecoder")


@register_gradient("CTCLoss")
def _ctc_loss_grad(op: Operation, grad_loss: Tensor, _unused: Any = None) -> list[Any]:
    from actorflow.ops.core_ops import stop_gradient
    g = stop_gradient(op.outputs[1])
    return [math_ops.multiply(array_ops.reshape(grad_loss, [1, -1, 1]), g), None, None, None]


def ctc_loss(labels: Any, inputs: Any = None, sequence_length: Any = None,
             preprocess_collapse_repeated: bool = False, ctc_merge_repeated: bool = True,
             ignore_longer_outputs_than_inputs: bool = False, time_major: bool = True,
             logits: Any = None) -> Tensor:
    """-log p(labels | inputs) per sequence; `inputs` are unnormalized logits."""
    if not isinstance(labels, SparseTensor):
        raise TypeError("ctc_loss: labels must be a SparseTensor (e.g. from "
                        "af.sparse.from_dense or af.SparseTensor)")
    x = convert_to_tensor(inputs if inputs is not None else logits)
    if not time_major:
        x = array_ops.transpose(x, [1, 0, 2])
    if sequence_length is None:
        raise InvalidArgumentError("ctc_loss needs sequence_length ([batch] ints)")
    ins = [x, cast(labels.indices, dtypes.int64), cast(labels.values, dtypes.int32),
           cast(convert_to_tensor(sequence_length), dtypes.int32)]
    return apply_op("CTCLoss", ins, {
        "preprocess_collapse_repeated": bool(preprocess_collapse_repeated),
        "ctc_merge_repeated": bool(ctc_merge_repeated),
        "ignore_longer_outputs_than_inputs": bool(ignore_longer_outputs_than_inputs)},
        name="CTCLoss")[0]


def _decoder_inputs(inputs: Any, sequence_length: Any, what: str) -> list[Tensor]:
    """A decoder's (time-major logits [max_time, batch, classes], int32 lengths)."""
    x = convert_to_tensor(inputs)
    if x._shape is not None and len(x._shape) != 3:
        raise InvalidArgumentError(f"{what}: inputs must be [max_time, batch, classes], "
                                   f"got {list(x._shape)}")
    return [x, cast(convert_to_tensor(sequence_length), dtypes.int32)]


def ctc_greedy_decoder(inputs: Any, sequence_length: Any, merge_repeated: bool = True
                       ) -> tuple[list[Any], Tensor]:
    """([the best path as a SparseTensor], -sum of the best logits [batch, 1]): the most
    likely class per frame, repeats merged (when asked), blanks removed."""
    outs = apply_op("CTCGreedyDecoder", _decoder_inputs(inputs, sequence_length,
                                                        "ctc_greedy_decoder"),
                    {"merge_repeated": bool(merge_repeated)}, name="CTCGreedyDecoder")
    return [SparseTensor(outs[0], outs[1], outs[2])], outs[3]


def _beam_infer(ins: list[Tensor], a: dict) -> list:
    top = int(a["top_paths"])
    b = None if ins[0]._shape is None else ins[0]._shape[1]
    return ([(dtypes.int64, (None, 2))] * top + [(dtypes.int64, (None,))] * top +
            [(dtypes.int64, (2,))] * top + [(ins[0].dtype, (b, top))])


define_op("CTCBeamSearchDecoder", infer=_beam_infer)
no_gradient("CTCBeamSearchDecoder")


def ctc_beam_search_decoder(inputs: Any, sequence_length: Any, beam_width: int = 100,
                            top_paths: int = 1, merge_repeated: bool = True
                            ) -> tuple[list[Any], Tensor]:
    """([top_paths SparseTensors, best first], their log-probabilities [batch, top_paths]):
    CTC prefix beam search keeping `beam_width` prefixes per frame; with `merge_repeated`,
    repeated labels in a decoded path are merged (TF's rule)."""
    if not 1 <= top_paths <= beam_width:
        raise InvalidArgumentError(f"ctc_beam_search_decoder: top_paths must be in [1, "
                                   f"beam_width={beam_width}], got {top_paths}")
    outs = apply_op("CTCBeamSearchDecoder", _decoder_inputs(inputs, sequence_length,
                                                            "ctc_beam_search_decoder"),
                    {"beam_width": int(beam_width), "top_paths": int(top_paths),
                     "merge_repeated": bool(merge_repeated)}, name="CTCBeamSearchDecoder")
    k = int(top_paths)
    return ([SparseTensor(outs[i], outs[k + i], outs[2 * k + i]) for i in range(k)],
            outs[3 * k])


# ---- pooling with argmax -------------------------------------------------------------------
def _argmax_infer(ins: list[Tensor], a: dict) -> list:
    from actorflow.ops.nn_conv_ops import _pool_out, _rank4
    out = _pool_out("max_pool_with_argmax", _rank4(ins[0], "max_pool_with_argmax", "input"), a)
    return [(ins[0].dtype, out), (a["Targmax"], out)]


define_op("MaxPoolWithArgmax", infer=_argmax_infer)


@register_gradient("MaxPoolWithArgmax")
def _max_pool_argmax_grad(op: Operation, grad: Tensor, _unused: Any = None) -> list[Any]:
    x = op.inputs[0]
    n, h, w, c = x._shape
    idx = cast(op.outputs[1], dtypes.int64)
    if not op.attrs.get("include_batch_in_index", False):
        off = np.arange(n, dtype=np.int64).reshape(-1, 1, 1, 1) * (h * w * c)
        idx = math_ops.add(idx, convert_to_tensor(off))
    flat = reduction_ops.unsorted_segment_sum(array_ops.reshape(grad, [-1]),
                                              array_ops.reshape(idx, [-1]), n * h * w * c)
    return [array_ops.reshape(flat, [n, h, w, c])]


def max_pool_with_argmax(input: Any, ksize: Any, strides: Any, padding: str,  # noqa: A002
                         data_format: str = "NHWC", Targmax: Any = dtypes.int64,  # noqa: N803
                         name: str | None = None, output_dtype: Any = None,
                         include_batch_in_index: bool = False) -> tuple[Tensor, Tensor]:
    """(max_pool's output, the flattened index of each maximum: the first in scan order)."""
    from actorflow.ops.nn_conv_ops import _hw4, _padding
    if data_format != "NHWC":
        raise InvalidArgumentError("max_pool_with_argmax supports data_format='NHWC'")
    x = convert_to_tensor(input)
    if any(d is None for d in (x._shape or (None,))):
        raise InvalidArgumentError(f"max_pool_with_argmax needs a fully known input shape, "
                                   f"got {x._shape}")
    dt = dtypes.as_dtype(output_dtype if output_dtype is not None else Targmax)
    attrs = {"ksize": _hw4(ksize, "max_pool_with_argmax", "ksize"),
             "strides": _hw4(strides, "max_pool_with_argmax", "strides"),
             "padding": _padding(padding, "max_pool_with_argmax", explicit_ok=False),
             "Targmax": dt, "include_batch_in_index": bool(include_batch_in_index)}
    out = apply_op("MaxPoolWithArgmax", [x], attrs, name=name or "MaxPoolWithArgmax")
    return out[0], out[1]


# ---- dilation2d -----------------------------------------------------------------------------
def dilation2d(input: Any, filter: Any = None, strides: Any = None,  # noqa: A002
               rates: Any = None, padding: str | None = None, name: str | None = None,
               filters: Any = None, data_format: str = "NHWC",
               dilations: Any = None) -> Tensor:
    """out[b, y, x, c] = max over (dy, dx) of input[b, y*s + dy*r, x*s + dx*r, c] +
    filter[dy, dx, c] (positions in the padding never win)."""
    from actorflow.ops.join_ops import stack
    from actorflow.ops.nn_conv_ops import _hw4
    with name_scope(name, "dilation2d"):
        x = convert_to_tensor(input)
        f = convert_to_tensor(filter if filter is not None else filters)
        if x._shape is None or len(x._shape) != 4 or f._shape is None or len(f._shape) != 3:
            raise InvalidArgumentError(f"dilation2d needs a 4-D input and a 3-D filter "
                                       f"[h, w, channels], got {x._shape} and {f._shape}")
        _, h, w, c = x._shape
        kh, kw = int(f._shape[0]), int(f._shape[1])
        st = _hw4(strides, "dilation2d", "strides")
        rt = _hw4(rates if rates is not None else dilations, "dilation2d", "rates")
        plan = []
        for size, k, s, r in ((h, kh, st[1], rt[1]), (w, kw, st[2], rt[2])):
            ek = (k - 1) * r + 1
            if padding == "VALID":
                if size < ek:
                    raise InvalidArgumentError(f"dilation2d: input {h}x{w} is smaller than "
                                               f"the dilated filter")
                plan.append(((size - ek) // s + 1, 0, 0))
            elif padding == "SAME":
                o = -(-size // s)
                tot = max((o - 1) * s + ek - size, 0)
                plan.append((o, tot // 2, tot - tot // 2))
            else:
                raise InvalidArgumentError(f"dilation2d: padding must be 'SAME' or 'VALID', "
                                           f"got {padding!r}")
        (oh, pt, pb), (ow, pl, pr) = plan
        low = float(np.finfo(x.dtype.np).min) / 2
        xp = array_ops.pad(x, [[0, 0], [pt, pb], [pl, pr], [0, 0]], constant_values=low) \
            if pt or pb or pl or pr else x
        cands = []
        for dy in range(kh):
            for dx in range(kw):
                y0, x0 = dy * rt[1], dx * rt[2]
                sl = xp[:, y0:y0 + (oh - 1) * st[1] + 1:st[1], x0:x0 + (ow - 1) * st[2] + 1:st[2]]
                cands.append(math_ops.add(sl, f[dy, dx]))
        return reduction_ops.reduce_max(stack(cands, 0), 0)
