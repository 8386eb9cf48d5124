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
