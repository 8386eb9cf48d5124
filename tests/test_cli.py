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


def test_python_m_actorflow_runs_the_commands_installed_packages_add(tmp_path, monkeypatch,
                                                                     capsys) -> None:  # type: ignore[no-untyped-def]
    """`actorflow.cli.main` (``python -m actorflow`` and the installed script) finds the models'
    commands through entry points, as pyproject.toml declares them, with no upward import."""
    import importlib
    import tomllib
    from pathlib import Path

    from actorflow import cli as af_cli

    meta = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["actorflow"] == "actorflow.cli:main"
    declared = meta["project"]["entry-points"][af_cli.COMMANDS_GROUP]
    info = tmp_path / "actorflow-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: actorflow\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{af_cli.COMMANDS_GROUP}]\n" + "".join(f"{k} = {v}\n" for k, v in declared.items()))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert sorted(af_cli.added_commands()) == ["demo", "train"]
    assert af_cli.main(["train", "mlp", "--workers", "0"]) == 2
    assert "need at least 1 ps and 1 worker task" in capsys.readouterr().err
