"""Lookup tables (TF1's contrib.lookup / tf.lookup): vocabularies from tensors and files, OOV
buckets, inverse tables, mutable tables, tables_initializer, errors."""

import numpy as np
import pytest

import actorflow as tf


def test_vocabulary_tables_from_tensors_and_files(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("emerson\nlake\npalmer\n")
    with tf.Graph().as_default():
        t = tf.contrib.lookup.index_table_from_tensor(["emerson", "lake", "palmer"],
                                                      num_oov_buckets=2)
        ids = t.lookup(tf.constant([["emerson", "lake"], ["and", "palmer"]]))
        from_file = tf.contrib.lookup.index_table_from_file(vocabulary_file=str(vocab))
        file_ids = from_file.lookup(tf.constant(["palmer", "x", "emerson"]))
        inverse = tf.contrib.lookup.index_to_string_table_from_tensor(["a", "b"])
        words = inverse.lookup(tf.constant([1, 0, 5], tf.int64))
        inv_file = tf.contrib.lookup.index_to_string_table_from_file(str(vocab), default_value="?")
        file_words = inv_file.lookup(tf.constant([2, 9], tf.int64))
        nums = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer([1, 2], [10., 20.]),
                                         -1.0)
        values = nums.lookup(tf.constant([2, 3, 1], tf.int32))
        with tf.Session() as s:
            with pytest.raises(tf.errors.FailedPreconditionError, match="tables_initializer"):
                s.run(ids)
            s.run(tf.tables_initializer())
            got = s.run(ids)
            assert got[0].tolist() == [0, 1] and got[1, 1] == 2 and got[1, 0] in (3, 4)
            assert s.run(ids)[1, 0] == got[1, 0]  # the OOV bucket is stable
            assert s.run(t.size()) == 5
            assert s.run(file_ids).tolist() == [2, -1, 0]
            assert s.run(words).tolist() == [b"b", b"a", b"UNK"]
            assert s.run(file_words).tolist() == [b"palmer", b"?"]
            np.testing.assert_array_equal(s.run(values), [20., -1., 10.])
            s.run(tf.tables_initializer())  # initializing again changes nothing
            assert s.run(from_file.size()) == 3


def test_mutable_table_and_errors(tmp_path):
    with tf.Graph().as_default():
        m = tf.contrib.lookup.MutableHashTable(tf.string, tf.int64, -1)
        ins = m.insert(tf.constant(["q", "r"]), tf.constant([7, 8], tf.int64))
        found = m.lookup(tf.constant(["r", "s"]))
        bad = tf.contrib.lookup.index_table_from_file(vocabulary_file=str(tmp_path / "none"))
        with tf.Session() as s:
            s.run(ins)
            assert s.run(found).tolist() == [8, -1] and s.run(m.size()) == 2
            with pytest.raises(tf.errors.FailedPreconditionError, match="cannot read vocabulary"):
                s.run(tf.tables_initializer())
        with pytest.raises(tf.errors.InvalidArgumentError, match="string keys"):
            m.lookup(tf.constant([1, 2]))
        with pytest.raises(ValueError, match="num_oov_buckets"):
            tf.contrib.lookup.index_table_from_tensor(["a"], num_oov_buckets=-1)
    assert bad is not None
