"""Imports point down the layers of DESIGN.md: devices < transport < scheduler < actorflow <
models. Any import of a higher layer, even inside a function, fails this test."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAYERS = ["devices", "transport", "scheduler", "actorflow", "models"]


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


@pytest.mark.parametrize("layer", LAYERS)
def test_no_upward_imports(layer: str) -> None:
    above = set(LAYERS[LAYERS.index(layer) + 1:])
    bad = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for line, mod in _imports(path):
            if mod in above:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    assert not bad, "imports pointing up the layers:\n" + "\n".join(bad)


def test_the_check_catches_an_upward_import(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "bad.py"
    f.write_text("def f():\n    from actorflow import graph\n")
    assert (2, "actorflow") in _imports(f)
