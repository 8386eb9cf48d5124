"""``af.strings``: TF's string namespace over `actorflow.ops.string_ops`, the hash bucket of
`actorflow.lookup_ops`, and `actorflow.ops.string_hash_ops` (the other hash buckets, base64,
format)."""

from actorflow.lookup_ops import string_to_hash_bucket_fast as to_hash_bucket_fast
from actorflow.ops.string_ops import (
    length,
    lower,
    reduce_join,
    regex_full_match,
    regex_replace,
    split,
    strip,
    substr,
    upper,
)
from actorflow.ops.string_ops import string_join as join
from actorflow.ops.string_ops import string_to_number as to_number

__all__ = ["length", "lower", "upper", "strip", "reduce_join", "regex_full_match",
           "regex_replace", "split", "substr", "join", "to_number", "to_hash_bucket_fast"]

# --- s9api: hash buckets (TF's exact functions), base64, format ---
from actorflow.ops.string_hash_ops import (  # noqa: E402
    decode_base64,
    encode_base64,
    ngrams,
    string_to_hash_bucket,
    string_to_hash_bucket_strong,
)
from actorflow.ops.string_hash_ops import string_format as format  # noqa: E402,A001
from actorflow.ops.string_ops import as_string  # noqa: E402

to_hash_bucket = string_to_hash_bucket
to_hash_bucket_strong = string_to_hash_bucket_strong
__all__ += ["ngrams", "as_string", "format", "to_hash_bucket", "to_hash_bucket_strong",
            "encode_base64", "decode_base64"]
