"""Summary ops as TF1 users write them: ``af.summary.scalar``, ``histogram``, ``image``,
``audio``, ``text``, ``tensor_summary``, ``merge`` and ``merge_all``.

Each builder adds one op whose output is a scalar string tensor holding a serialized
`Summary` protocol buffer (the kernels, in `devices.kernels.summary`, run where the input lives;
on a cluster only those bytes travel back). Fetch it and pass it to `FileWriter.add_summary`.

Names and tags follow TF1's ``summary_scope``: a summary ``name`` built under name scope ``s``
is the op ``s/name`` with tag ``s/name``; with ``family=f`` the op is ``s/f/name`` and its tag
``f/s/f/name`` (so TensorBoard groups it under ``f``). Characters TensorBoard does not accept in
a tag become ``_``. Each op is added to the graph collections in `collections` (default
``[GraphKeys.SUMMARIES]``), which `merge_all` gathers.

    loss_s = af.summary.scalar("loss", loss)
    af.summary.histogram("weights", w, family="params")
    merged = af.summary.merge_all()
    writer = af.summary.FileWriter("logs/run1", sess.graph)
    writer.add_summary(sess.run(merged, feed), global_step=step)
"""

from __future__ import annotations

import re
from typing import Any

from actorflow.graph import GraphKeys, Tensor, get_default_graph, name_scope
from actorflow.op_def import apply_op, convert_to_tensor, define_op, no_gradient
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["scalar", "histogram", "image", "audio", "text", "tensor_summary", "merge",
           "merge_all"]

_SUMMARY_OPS = ("ScalarSummary", "HistogramSummary", "ImageSummary", "AudioSummaryV2",
                "TensorSummaryV2", "MergeSummary")
for _op in _SUMMARY_OPS:
    define_op(_op, infer=lambda ins, a: [(dtypes.string, ())])
    no_gradient(_op)

_INVALID_TAG = re.compile(r"[^-/\w\.]")


def _clean_tag(name: str | None) -> str | None:
    if name is None:
        return None
    new = _INVALID_TAG.sub("_", name).lstrip("/")
    return new or "summary"


def _build(op: str, name: str, family: str | None, inputs: list[Tensor],
           attrs: dict[str, Any], collections: list[str] | None) -> Tensor:
    """Build summary op `op`: its op name and tag as TF's summary_scope gives them."""
    cname, cfamily = _clean_tag(name), _clean_tag(family)
    base = cname if cfamily is None else f"{cfamily}/{cname}"
    g = inputs[0].graph if inputs else get_default_graph()
    full = g.unique_name(base, mark_as_used=False)  # the name apply_op will give the op
    tag = full if cfamily is None else f"{cfamily}/{full}"
    out = apply_op(op, inputs, {"tag": tag, **attrs}, name=base)[0]
    for key in (collections if collections is not None else [GraphKeys.SUMMARIES]):
        g.add_to_collection(key, out)
    return out


def _real(x: Any, what: str, name: str) -> Tensor:
    t = convert_to_tensor(x)
    if not (t.dtype.is_floating or t.dtype.is_integer or t.dtype.is_bool):
        raise InvalidArgumentError(
            f"{what} '{name}' summarizes real numbers, got a {t.dtype.name} tensor "
            f"'{t.name}'; use af.summary.text for strings")
    return t


def scalar(name: str, tensor: Any, collections: list[str] | None = None,
           family: str | None = None) -> Tensor:
    """A summary of one real scalar (TensorBoard's Scalars tab)."""
    t = _real(tensor, "scalar summary", name)
    if t.shape.rank is not None and t.shape.num_elements() not in (None, 1):
        raise InvalidArgumentError(
            f"scalar summary '{name}' needs a scalar, got '{t.name}' of shape {t.shape}; "
            f"reduce it first (e.g. af.reduce_mean)")
    return _build("ScalarSummary", name, family, [t], {}, collections)


def histogram(name: str, values: Any, collections: list[str] | None = None,
              family: str | None = None) -> Tensor:
    """A histogram of every element of `values` (TensorBoard's Histograms/Distributions)."""
    return _build("HistogramSummary", name, family, [_real(values, "histogram", name)], {},
                  collections)


def image(name: str, tensor: Any, max_outputs: int = 3, collections: list[str] | None = None,
          family: str | None = None) -> Tensor:
    """Up to `max_outputs` images of a [batch, height, width, 1|3|4] uint8 or float tensor."""
    t = _real(tensor, "image summary", name)
    if t.shape.rank is not None and (t.shape.rank != 4 or t.shape.as_list()[-1] not in
                                     (1, 3, 4, None)):
        raise InvalidArgumentError(
            f"image summary '{name}' takes a [batch, height, width, channels] tensor with "
            f"1, 3 or 4 channels, got '{t.name}' of shape {t.shape}")
    if max_outputs < 1:
        raise InvalidArgumentError(f"image summary '{name}': max_outputs must be >= 1")
    return _build("ImageSummary", name, family, [t], {"max_images": int(max_outputs)},
                  collections)


def audio(name: str, tensor: Any, sample_rate: float, max_outputs: int = 3,
          collections: list[str] | None = None, family: str | None = None) -> Tensor:
    """Up to `max_outputs` clips of a [batch, frames(, channels)] float tensor in [-1, 1]."""
    t = _real(tensor, "audio summary", name)
    if isinstance(sample_rate, Tensor):
        raise InvalidArgumentError(
            f"audio summary '{name}': pass sample_rate as a Python number")
    if sample_rate <= 0 or max_outputs < 1:
        raise InvalidArgumentError(
            f"audio summary '{name}': sample_rate must be > 0 and max_outputs >= 1")
    return _build("AudioSummaryV2", name, family, [t],
                  {"max_outputs": int(max_outputs), "sample_rate": float(sample_rate)},
                  collections)


def _metadata(plugin: str | None = None, description: str | None = None,
              display_name: str | None = None) -> bytes:
    from tensorboardX.proto import summary_pb2
    m = summary_pb2.SummaryMetadata()
    if plugin is not None:
        m.plugin_data.plugin_name = plugin
    if description:
        m.summary_description = description
    if display_name:
        m.display_name = display_name
    return m.SerializeToString()


def tensor_summary(name: str, tensor: Any, summary_description: str | None = None,
                   collections: list[str] | None = None, summary_metadata: Any = None,
                   family: str | None = None, display_name: str | None = None) -> Tensor:
    """A summary holding `tensor` itself as a TensorProto (any dtype, strings included)."""
    t = convert_to_tensor(tensor)
    if t.dtype.is_resource:
        raise InvalidArgumentError(f"tensor_summary '{name}' cannot hold a resource handle")
    if summary_metadata is not None:
        meta = summary_metadata if isinstance(summary_metadata, bytes) else \
            summary_metadata.SerializeToString()
    else:
        meta = _metadata(None, summary_description, display_name)
    return _build("TensorSummaryV2", name, family, [t], {"metadata": meta, "dtype": t.dtype},
                  collections)


def text(name: str, tensor: Any, collections: list[str] | None = None) -> Tensor:
    """A string tensor for TensorBoard's Text tab (markdown)."""
    t = convert_to_tensor(tensor) if isinstance(tensor, Tensor) else \
        convert_to_tensor(tensor, dtype=dtypes.string)
    if not t.dtype.is_string:
        raise InvalidArgumentError(
            f"text summary '{name}' takes a string tensor, got {t.dtype.name} '{t.name}'")
    return _build("TensorSummaryV2", name, None, [t],
                  {"metadata": _metadata("text"), "dtype": dtypes.string}, collections)


def merge(inputs: list[Any], collections: list[str] | None = None,
          name: str | None = None) -> Tensor:
    """One Summary holding every value of `inputs` (string tensors of serialized Summaries)."""
    ts = [convert_to_tensor(x) for x in inputs]
    if not ts:
        raise InvalidArgumentError("af.summary.merge needs at least one summary tensor")
    for t in ts:
        if not t.dtype.is_string:
            raise InvalidArgumentError(
                f"af.summary.merge takes summary (string) tensors, got {t.dtype.name} "
                f"'{t.name}'")
    with name_scope(name, "Merge"):
        out = apply_op("MergeSummary", ts, {}, name="MergeSummary")[0]
    for key in collections or ():
        out.graph.add_to_collection(key, out)
    return out


def merge_all(key: str = GraphKeys.SUMMARIES, scope: str | None = None,
              name: str | None = None) -> Tensor | None:
    """Merge every summary in collection `key` (optionally under `scope`); None if there is
    none, as in TF."""
    items = get_default_graph().get_collection(key, scope)
    if not items:
        return None
    return merge(items, name=name)
