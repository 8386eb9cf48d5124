"""``af.summary``: TF1's summary API (ops producing serialized `Summary` protos as string
tensors) and the `FileWriter` that writes them to TensorBoard event files."""

from actorflow.summary.summary_ops import (
    audio,
    histogram,
    image,
    merge,
    merge_all,
    scalar,
    tensor_summary,
    text,
)
from actorflow.summary.writer import FileWriter, FileWriterCache


def __getattr__(name: str):  # Summary, Event, SessionLog: tensorboardX's protos, on first use
    if name in ("Summary", "HistogramProto", "SummaryMetadata"):
        from tensorboardX.proto import summary_pb2
        return getattr(summary_pb2, name)
    if name in ("Event", "SessionLog", "TaggedRunMetadata"):
        from tensorboardX.proto import event_pb2
        return getattr(event_pb2, name)
    raise AttributeError(f"module 'actorflow.summary' has no attribute {name!r}")


__all__ = ["audio", "histogram", "image", "merge", "merge_all", "scalar", "tensor_summary",
           "text", "FileWriter", "FileWriterCache", "Summary", "HistogramProto",
           "SummaryMetadata", "Event", "SessionLog", "TaggedRunMetadata"]
