"""TF1 programs written the way TF1 users write them (``import actorflow as tf``; tf.app.run
with flags, tf.layers, tf.losses, RNNs, nce_loss, arg_min ...), each run end to end as
``__main__`` on the local digits data, with its printed result asserted."""

from __future__ import annotations

import os
import runpy
import sys

import pytest

import actorflow as af

HERE = os.path.join(os.path.dirname(__file__), "tf1_programs")


def run_program(name: str, argv: list[str], capsys: pytest.CaptureFixture) -> dict[str, str]:
    """Run tests/tf1_programs/<name>.py as __main__ with `argv`; return its 'key value' lines.
    Each program gets a fresh default graph and fresh flags, as a new process would."""
    af.reset_default_graph()
    af.flags.FLAGS.reset()
    old = sys.argv
    sys.argv = [name + ".py", *argv]
    try:
        with pytest.raises(SystemExit) as e:  # tf.app.run exits with main's result
            runpy.run_path(os.path.join(HERE, name + ".py"), run_name="__main__")
        assert e.value.code in (None, 0)
    finally:
        sys.argv = old
    out = capsys.readouterr().out
    result = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        result[key] = value
    return result


def test_softmax_regression(capsys: pytest.CaptureFixture) -> None:
    r = run_program("softmax_regression", ["--epochs=20", "--learning_rate", "0.5"], capsys)
    assert float(r["accuracy"]) > 0.88


def test_cnn_layers_losses_in_top_k(capsys: pytest.CaptureFixture) -> None:
    r = run_program("cnn_layers", ["--steps=120", "--nouse_dropout", "extra"], capsys)
    acc, _, rest = r["accuracy"].partition(" argv ")
    assert float(acc) > 0.85
    assert rest == "['extra']"  # arguments that are not flags reach main


def test_lstm_dynamic_rnn(capsys: pytest.CaptureFixture) -> None:
    r = run_program("lstm_dynamic_rnn", ["--epochs=6"], capsys)
    assert float(r["accuracy"]) > 0.8


def test_static_rnn_contrib(capsys: pytest.CaptureFixture) -> None:
    r = run_program("static_rnn_contrib", ["--steps=200"], capsys)
    assert float(r["accuracy"]) > 0.7
    assert float(r["final"].split()[-1]) == pytest.approx(0.0075)  # halved at steps 100, 200


def test_word2vec_nce(capsys: pytest.CaptureFixture) -> None:
    r = run_program("word2vec_nce", [], capsys)
    assert float(r["last_loss"]) < 0.6 * float(r["first_loss"])
    assert float(r["pairs_found"]) >= 0.8


def test_autoencoder(capsys: pytest.CaptureFixture) -> None:
    r = run_program("autoencoder", ["--epochs=25"], capsys)
    assert int(r["variables"]) == 8
    assert float(r["last_mse"]) < 0.6 * float(r["first_mse"])


def test_knn_arg_min(capsys: pytest.CaptureFixture) -> None:
    r = run_program("knn_arg_min", [], capsys)
    assert float(r["accuracy"]) >= 0.95


def test_mlp_contrib_bn_compat_gfile(capsys: pytest.CaptureFixture, tmp_path) -> None:
    out = tmp_path / "out"
    r = run_program("mlp_contrib_bn", [f"--out_dir={out}", "--layers=48,24"], capsys)
    assert float(r["accuracy"]) > 0.85
    assert r["moving_mean_moved"] == "True"
    assert r["files"] == "['result.txt']"
    assert (out / "result.txt").read_text().startswith("accuracy 0.")


def test_bidirectional_lstm_contrib(capsys: pytest.CaptureFixture) -> None:
    r = run_program("bidirectional_lstm", ["--steps=150"], capsys)
    assert float(r["accuracy"]) > 0.7


def test_variational_autoencoder(capsys: pytest.CaptureFixture) -> None:
    r = run_program("vae", ["--epochs=10"], capsys)
    assert float(r["last_loss"]) < 0.7 * float(r["first_loss"])
