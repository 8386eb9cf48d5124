"""``af.data``: input pipelines as Datasets (see `actorflow.data.dataset`)."""

from actorflow.data.dataset import Dataset
from actorflow.data.iterator import Iterator, make_initializable_iterator, make_one_shot_iterator

__all__ = ["Dataset", "Iterator", "make_one_shot_iterator", "make_initializable_iterator"]

# TFRecord / Example (session 7 io)
from actorflow.data.file_datasets import (  # noqa: E402
    FixedLengthRecordDataset,
    TextLineDataset,
    TFRecordDataset,
)

__all__ += ["TFRecordDataset", "TextLineDataset", "FixedLengthRecordDataset"]
