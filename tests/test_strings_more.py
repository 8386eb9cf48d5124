"""The string ops that must give TensorFlow's exact bytes: hash buckets (Fingerprint64,
legacy Hash64, SipHash-2-4), web-safe base64 and strings.format, against values TensorFlow
2.21 computed (tests/data/tf_string_hashes.json, made with .tfenv)."""

import json
from pathlib import Path

import numpy as np
import pytest

import actorflow as af
from devices.errors import InvalidArgumentError
from devices.kernels.strings_hash import siphash24

DATA = json.loads((Path(__file__).parent / "data" / "tf_string_hashes.json").read_text())
STRINGS = np.array([bytes.fromhex(h) for h in DATA["strings"]], dtype=object)


def run(*fetches):
    with af.Session() as s:
        return s.run(list(fetches))


def test_hash_buckets_equal_tensorflows():
    c = af.constant(STRINGS)
    fast, legacy, strong = run(af.string_to_hash_bucket_fast(c, 2 ** 62),
                               af.string_to_hash_bucket(c, 2 ** 62),
                               af.string_to_hash_bucket_strong(c, 2 ** 62, key=DATA["key"]))
    assert fast.tolist() == DATA["fast"]
    assert legacy.tolist() == DATA["legacy"]
    assert strong.tolist() == DATA["strong"]
    assert af.strings.to_hash_bucket_strong is af.string_to_hash_bucket_strong


def test_siphash_reference_vector():
    # SipHash-2-4 paper, appendix A: key 00..0f, message 00..0e
    k0 = int.from_bytes(bytes(range(8)), "little")
    k1 = int.from_bytes(bytes(range(8, 16)), "little")
    assert siphash24(k0, k1, bytes(range(15))) == 0xA129CA6149BE45E5


def test_base64_round_trip_and_tf_text():
    c = af.constant(STRINGS)
    enc, enc_pad, dec, dec_pad = run(af.encode_base64(c), af.encode_base64(c, pad=True),
                                     af.decode_base64(af.encode_base64(c)),
                                     af.decode_base64(af.encode_base64(c, pad=True)))
    assert [x.decode() for x in enc] == DATA["b64"]
    assert [x.decode() for x in enc_pad] == DATA["b64_pad"]
    assert dec.tolist() == STRINGS.tolist() and dec_pad.tolist() == STRINGS.tolist()
    with pytest.raises(InvalidArgumentError):
        run(af.decode_base64(af.constant([b"a+b/"])))  # not the web-safe alphabet


def test_format_summaries_equal_tensorflows():
    outs = run(af.strings.format("{} | {}", (af.constant(np.arange(10, dtype=np.float32) / 4),
                                              af.constant([[1, 2], [3, 4]]))),
               af.strings.format("{}", af.constant([True, False])),
               af.strings.format("<{}>", af.constant(1e10, af.float32)),
               af.strings.format("{}", af.constant(np.arange(24).reshape(2, 3, 4)), summarize=2))
    assert [o.decode() for o in outs] == DATA["format"]
    with pytest.raises(InvalidArgumentError, match="placeholders"):
        af.strings.format("{} {}", [af.constant(1)])


def test_bad_hash_arguments():
    with pytest.raises(InvalidArgumentError, match="num_buckets"):
        af.string_to_hash_bucket(af.constant([b"a"]), 0)
    with pytest.raises(InvalidArgumentError, match="2 integers"):
        af.string_to_hash_bucket_strong(af.constant([b"a"]), 10, key=[1])


def test_ngrams_on_dense_rows():
    d = af.constant([[b"a", b"b", b"c", b"d"], [b"e", b"f", b"g", b"h"]])
    two, mixed, padded, short = run(af.strings.ngrams(d, 2),
                                    af.strings.ngrams(d, [1, 3], separator="-"),
                                    af.strings.ngrams(d, 2, pad_values="#", padding_width=1),
                                    af.strings.ngrams(d, 5))
    assert two.tolist() == [[b"a b", b"b c", b"c d"], [b"e f", b"f g", b"g h"]]
    assert mixed[0].tolist() == [b"a", b"b", b"c", b"d", b"a-b-c", b"b-c-d"]
    assert padded[1].tolist() == [b"# e", b"e f", b"f g", b"g h", b"h #"]
    assert short.shape == (2, 0)
    (lr,) = run(af.strings.ngrams(d[:1], 3, pad_values=("<", ">")))
    assert lr[0].tolist() == [b"< < a", b"< a b", b"a b c", b"b c d", b"c d >", b"d > >"]
