"""``af.io``: TF 1.13+'s home for file and encoding ops, the same functions as their TF1
top-level names (``af.read_file`` is ``af.io.read_file``), and ``af.io.gfile``: `af.gfile`
under the lower-case names TF 1.13+ gives it (exists, makedirs, glob, listdir, GFile, ...)."""

import types

from actorflow import gfile as _gfile
from actorflow.io_readers import match_filenames_once
from actorflow.ops.image_io_ops import (
    decode_bmp,
    decode_gif,
    decode_image,
    decode_jpeg,
    decode_png,
    encode_jpeg,
    encode_png,
    read_file,
    write_file,
)

gfile = types.SimpleNamespace(
    exists=_gfile.Exists, isdir=_gfile.IsDirectory, makedirs=_gfile.MakeDirs,
    mkdir=_gfile.Mkdir, rmtree=_gfile.DeleteRecursively, remove=_gfile.Remove,
    rename=_gfile.Rename, copy=_gfile.Copy, glob=_gfile.Glob, listdir=_gfile.ListDirectory,
    walk=_gfile.Walk, stat=_gfile.Stat, GFile=_gfile.GFile)

__all__ = ["gfile", "read_file", "write_file", "decode_image", "decode_png", "decode_jpeg",
           "decode_bmp", "decode_gif", "encode_png", "encode_jpeg", "match_filenames_once"]

# TFRecord / Example (session 7 io): tf.io's TFRecord files and parsing ops
from actorflow.parsing_ops import (  # noqa: E402
    FixedLenFeature,
    FixedLenSequenceFeature,
    VarLenFeature,
    decode_csv,
    decode_raw,
    parse_example,
    parse_single_example,
    parse_single_sequence_example,
    parse_tensor,
    serialize_tensor,
)
from actorflow.tfrecord import (  # noqa: E402
    TFRecordCompressionType,
    TFRecordOptions,
    TFRecordWriter,
    tf_record_iterator,
)

__all__ += ["FixedLenFeature", "FixedLenSequenceFeature", "VarLenFeature", "decode_csv",
            "decode_raw",
            "parse_example", "parse_single_example", "parse_single_sequence_example",
            "parse_tensor", "serialize_tensor",
            "TFRecordCompressionType", "TFRecordOptions", "TFRecordWriter",
            "tf_record_iterator"]
