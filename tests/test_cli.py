"""The `actorflow` program's in-process demo: it trains and reports a real test accuracy."""

import io

from models import cli


def test_demo_trains_the_digits_mlp() -> None:
    out = io.StringIO()
    acc = cli.demo(epochs=6, out=out)
    text = out.getvalue()
    assert acc >= 0.93
    assert "epoch  6/6" in text and "steps/s" in text
    assert f"test accuracy {acc:.2%}" in text


def test_unknown_command_is_an_error(capsys) -> None:  # type: ignore[no-untyped-def]
    try:
        cli.main(["fly"])
    except SystemExit as e:
        assert e.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_bad_flag_values_get_a_clear_error_not_a_traceback(capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli.main(["train", "mlp", "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "need at least 1 ps and 1 worker task" in err and "Traceback" not in err
