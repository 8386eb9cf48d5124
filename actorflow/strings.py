"""``af.strings``: TF's string namespace over `actorflow.ops.string_ops` and the hash bucket of
`actorflow.lookup_ops`."""

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
