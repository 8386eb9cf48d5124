"""String ops whose results must match TensorFlow's bytes: the hash buckets
(`string_to_hash_bucket`: TF's legacy Hash64; `string_to_hash_bucket_strong`: SipHash-2-4
with a 2-int key; `string_to_hash_bucket_fast` is in `actorflow.lookup_ops`), web-safe
base64 (`encode_base64`, `decode_base64`) and `strings.format` (TF's StringFormat: each
"{}" of the template replaced by a summary of the next tensor), and `strings.ngrams` on
dense tensors (composed: slices joined). Kernels in
`devices.kernels.strings_hash`; none is differentiable.

    af.strings.format("loss={} w={}", (loss, w))       # b"loss=0.25 w=[1 2 3 ... 8 9 10]"
"""

from __future__ import annotations

from typing import Any

from actorflow.graph import Tensor
from actorflow.op_def import apply_op, convert_to_tensor, define_op, no_gradient
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["string_to_hash_bucket", "string_to_hash_bucket_strong", "encode_base64",
           "decode_base64", "string_format", "ngrams"]

for _op, _dt in (("StringToHashBucket", dtypes.int64), ("StringToHashBucketStrong", dtypes.int64),
                 ("EncodeBase64", dtypes.string), ("DecodeBase64", dtypes.string)):
    define_op(_op, infer=(lambda d: lambda ins, a: [(d, ins[0]._shape)])(_dt))
    no_gradient(_op)
define_op("StringFormat", infer=lambda ins, a: [(dtypes.string, ())])
no_gradient("StringFormat")


def _text(x: Any, what: str) -> Tensor:
    t = x if isinstance(x, Tensor) else convert_to_tensor(x, dtype=dtypes.string)
    if not t.dtype.is_string:
        raise InvalidArgumentError(f"{what} takes a string tensor, got {t.dtype.name}")
    return t


def _buckets(n: Any, what: str) -> int:
    if int(n) < 1:
        raise InvalidArgumentError(f"{what}: num_buckets must be >= 1, got {n}")
    return int(n)


def string_to_hash_bucket(string_tensor: Any, num_buckets: int,
                          name: str | None = None) -> Tensor:
    """Each string's bucket: TF's Hash64 (MurmurHash64A, seed 0xDECAFCAFFE) mod num_buckets."""
    return apply_op("StringToHashBucket", [_text(string_tensor, "string_to_hash_bucket")],
                    {"num_buckets": _buckets(num_buckets, "string_to_hash_bucket")},
                    name=name or "StringToHashBucket")[0]


def string_to_hash_bucket_strong(input: Any, num_buckets: int, key: Any,  # noqa: A002
                                 name: str | None = None) -> Tensor:
    """Each string's bucket under SipHash-2-4 keyed with `key` (two non-negative ints)."""
    ks = [int(k) for k in key]
    if len(ks) != 2:
        raise InvalidArgumentError(f"string_to_hash_bucket_strong: key must hold 2 integers, "
                                   f"got {len(ks)}")
    return apply_op("StringToHashBucketStrong",
                    [_text(input, "string_to_hash_bucket_strong")],
                    {"num_buckets": _buckets(num_buckets, "string_to_hash_bucket_strong"),
                     "key": ks}, name=name or "StringToHashBucketStrong")[0]


def encode_base64(input: Any, pad: bool = False, name: str | None = None) -> Tensor:  # noqa: A002
    """Web-safe base64 (- and _ for + and /), with '=' padding only when `pad`."""
    return apply_op("EncodeBase64", [_text(input, "encode_base64")], {"pad": bool(pad)},
                    name=name or "EncodeBase64")[0]


def decode_base64(input: Any, name: str | None = None) -> Tensor:  # noqa: A002
    """The bytes of web-safe base64 strings (padded or not)."""
    return apply_op("DecodeBase64", [_text(input, "decode_base64")],
                    name=name or "DecodeBase64")[0]


def string_format(template: str, inputs: Any, placeholder: str = "{}", summarize: int = 3,
                  name: str | None = None) -> Tensor:
    """A scalar string: `template` with each `placeholder` replaced by the next input's
    summary (at most `summarize` items from each end of an axis; -1 for all)."""
    ins = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    ts = [convert_to_tensor(x) for x in ins]
    if template.count(placeholder) != len(ts):
        raise InvalidArgumentError(
            f"strings.format: the template has {template.count(placeholder)} placeholders "
            f"'{placeholder}' but {len(ts)} inputs were given")
    return apply_op("StringFormat", ts, {"template": template, "placeholder": placeholder,
                                         "summarize": int(summarize)},
                    name=name or "StringFormat")[0]


def ngrams(data: Any, ngram_width: Any, separator: str = " ", pad_values: Any = None,
           padding_width: int | None = None, preserve_short_sequences: bool = False,
           name: str | None = None) -> Tensor:
    """The n-grams along the last axis of a dense string tensor, joined by `separator`
    (several widths: concatenated in order), optionally padded with pad_values (one string,
    or a (left, right) pair) `padding_width` (default width - 1) times on each side."""
    from actorflow.graph import name_scope
    from actorflow.ops.join_ops import concat
    from actorflow.ops.string_ops import string_join
    widths = [int(w) for w in (ngram_width if isinstance(ngram_width, (list, tuple))
                               else [ngram_width])]
    if any(w < 1 for w in widths):
        raise InvalidArgumentError(f"ngrams: widths must be >= 1, got {widths}")
    if preserve_short_sequences:
        raise InvalidArgumentError("ngrams: preserve_short_sequences needs ragged rows; it is "
                                   "not supported on dense tensors here")
    with name_scope(name, "StringNGrams"):
        x = _text(data, "ngrams")
        if x._shape is None or not x._shape or x._shape[-1] is None:
            raise InvalidArgumentError(f"ngrams needs a dense tensor with a known last axis, "
                                       f"got shape {x._shape}")
        outs = []
        for w in widths:
            t = x
            if pad_values is not None:
                left, right = (pad_values, pad_values) if isinstance(pad_values, (str, bytes)) \
                    else tuple(pad_values)
                p = w - 1 if padding_width is None else int(padding_width)
                lead = list(x._shape[:-1])
                parts = []
                for v, n in ((left, p), (None, 0), (right, p)):
                    if v is None:
                        parts.append(x)
                    elif n:
                        import numpy as np
                        arr = np.empty([*lead, n], dtype=object)
                        arr[...] = v.encode() if isinstance(v, str) else v
                        parts.append(convert_to_tensor(arr, dtype=dtypes.string))
                t = concat(parts, -1) if len(parts) > 1 else x
            m = t._shape[-1] - w + 1
            if m <= 0:
                import numpy as np
                outs.append(convert_to_tensor(np.empty([*x._shape[:-1], 0], dtype=object),
                                              dtype=dtypes.string))
                continue
            cols = [t[..., i:i + m] for i in range(w)]
            outs.append(string_join(cols, separator=separator) if w > 1 else cols[0])
        return outs[0] if len(outs) == 1 else concat(outs, -1)
