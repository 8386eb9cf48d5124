"""Text ops of TF1 input pipelines (decode_csv, which lives in parsing_ops, string_split,
string_to_number, string_join, reduce_join, substr, regex_replace, af.strings): values, sparse
outputs, errors."""

import numpy as np
import pytest

import actorflow as tf


def _run(*fetches):
    with tf.Session() as s:
        return s.run(list(fetches))


def test_decode_csv_defaults_quotes_select_and_errors():
    with tf.Graph().as_default():
        lines = tf.constant(['1,2.5,"a,b"', "3,,c", "5,6.0,"])
        a, b, c = tf.decode_csv(lines, [[0], [9.5], ["z"]])
        sel = tf.decode_csv(tf.constant(["x;1;2"]), [[0], [""]], field_delim=";",
                            select_cols=[2, 0])
        a_, b_, c_, s0, s1 = _run(a, b, c, *sel)
        assert a_.dtype == np.int32 and a_.tolist() == [1, 3, 5]
        np.testing.assert_array_equal(b_, np.float32([2.5, 9.5, 6.0]))
        assert c_.tolist() == [b"a,b", b"c", b"z"]
        assert (s0.tolist(), s1.tolist()) == ([2], [b"x"])
        with pytest.raises(tf.errors.InvalidArgumentError, match="Expect 1 fields but have 2"):
            _run(tf.decode_csv(tf.constant(["1,2"]), [[0]]))
        with pytest.raises(tf.errors.InvalidArgumentError, match="Field 0 is required"):
            _run(tf.decode_csv(tf.constant([","]), [tf.constant([], tf.int32), [0]]))
        with pytest.raises(tf.errors.InvalidArgumentError, match="not a valid int32"):
            _run(tf.decode_csv(tf.constant(["x"]), [[0]]))


def test_split_join_numbers_slices_regex_case():
    with tf.Graph().as_default():
        sp = tf.string_split(["hello world", "a  b", ""], " ")
        chars = tf.string_split(["ab"], "")
        words = tf.strings.split(["x y  z", "q"])
        got = _run(sp, chars, words)
        assert got[0].indices.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
        assert got[0].values.tolist() == [b"hello", b"world", b"a", b"b"]
        assert got[0].dense_shape.tolist() == [3, 2]
        assert got[1].values.tolist() == [b"a", b"b"]
        assert got[2].dense_shape.tolist() == [2, 3]
        num, ints, j, rj, sub, rr, low, ln, full = _run(
            tf.string_to_number(["1.5", "-2"]), tf.strings.to_number(["7"], out_type=tf.int64),
            tf.string_join([["a", "b"], "c"], separator="-"),
            tf.reduce_join([["a", "b"], ["c", "d"]], axis=1, separator=" "),
            tf.substr(["hello", "world"], 1, 3), tf.regex_replace(["a1b22"], "[0-9]+", "#"),
            tf.strings.lower(["AbC"]), tf.strings.length(["abc", ""]),
            tf.strings.regex_full_match(["ab1", "ab"], "[a-z]+"))
        np.testing.assert_array_equal(num, np.float32([1.5, -2]))
        assert ints.dtype == np.int64 and ints.tolist() == [7]
        assert j.tolist() == [b"a-c", b"b-c"] and rj.tolist() == [b"a b", b"c d"]
        assert sub.tolist() == [b"ell", b"orl"] and rr.tolist() == [b"a#b#"]
        assert low.tolist() == [b"abc"] and ln.tolist() == [3, 0]
        assert full.tolist() == [False, True]
        with pytest.raises(tf.errors.InvalidArgumentError, match="could not correctly convert"):
            _run(tf.string_to_number(["1x"]))
        with pytest.raises(tf.errors.InvalidArgumentError, match="string tensor"):
            tf.string_split(tf.constant([1, 2]))
