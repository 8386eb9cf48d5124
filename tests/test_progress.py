"""The training progress bar: tqdm on a terminal, plain lines (one per ~10%) otherwise."""

from __future__ import annotations

import io

from models.train_async import ProgressBar


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    bar = ProgressBar(100, out)
    for done in range(0, 101, 5):
        bar._last_draw = 0.0  # every update is a second after the last (no sleeping)
        bar.update(done, 0.5, 10.0)
    bar.finish()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 11  # 0%, 10% ... 100%
    assert lines[-1].startswith("training [") and "100/100 steps" in lines[-1]
    assert "loss 0.5000" in lines[-1]


def test_tqdm_on_a_terminal() -> None:
    out = _Tty()
    bar = ProgressBar(40, out)
    for done in (10, 20, 40):
        bar.update(done, 0.25, 5.0)
    bar.finish()
    text = out.getvalue()
    assert "\r" in text and "40/40" in text and "loss=0.2500" in text and "step" in text
