"""Shared benchmark helpers: timing statistics, the TensorFlow peer call, table printing.

Only NumPy and the standard library are used, so this module can be imported by
actorflow's benchmarks (main environment) and by ``peer_tf.py`` (``.tfenv``) alike.

Scripts in ``benchmarks/`` that are run directly should put the repository root on
``sys.path`` before importing this module::

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.common import measure, peer_tf, print_table
"""

from __future__ import annotations

import gc
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
TFENV_PYTHON = REPO_ROOT / ".tfenv" / "bin" / "python"
PEER_TF_SCRIPT = Path(__file__).resolve().parent / "peer_tf.py"


@dataclass(frozen=True)
class Stats:
    """Timing of one call of the measured function, in seconds (per call, not per sample)."""

    median: float
    p10: float
    p90: float
    mean: float
    repeat: int
    number: int

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict, handy for JSON output."""
        return asdict(self)

    def scaled(self, factor: float) -> Stats:
        """Same statistics multiplied by ``factor`` (e.g. ``1 / n_nodes`` or ``1e3`` for ms)."""
        return Stats(
            self.median * factor,
            self.p10 * factor,
            self.p90 * factor,
            self.mean * factor,
            self.repeat,
            self.number,
        )

    def __str__(self) -> str:
        return (
            f"median {fmt_time(self.median)} "
            f"[p10 {fmt_time(self.p10)}, p90 {fmt_time(self.p90)}] "
            f"({self.repeat}x{self.number})"
        )


def wait_for_compiled_loops(timeout: float = 120.0) -> None:
    """Load the kernels' compiled calls before timing: each loads on a background thread on
    its first use (`devices.kernels.loop_loader`), and a benchmark's timed steps must not
    share the CPU with that import (~0.7 s here; the first process of a checkout compiles:
    seconds). The small float32 products' call (`devices.kernels.math.SGEMM_LOOP`) is the one
    a plain step meets; the Dataset rows wait for the shuffle's loops themselves."""
    from devices.kernels.math import SGEMM_LOOP  # noqa: PLC0415 - imports the kernels

    SGEMM_LOOP.ready(timeout)


def fmt_time(seconds: float) -> str:
    """Human-readable duration: ns/us/ms/s with three significant figures."""
    if not math.isfinite(seconds):
        return str(seconds)
    a = abs(seconds)
    if a < 1e-6:
        return f"{seconds * 1e9:.3g} ns"
    if a < 1e-3:
        return f"{seconds * 1e6:.3g} us"
    if a < 1.0:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def calibrate(
    fn: Callable[[], object], *, target_s: float = 0.01, max_number: int = 1 << 20
) -> int:
    """Smallest power of two ``number`` whose ``number`` calls of ``fn`` take >= ``target_s``."""
    number = 1
    while number < max_number:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - t0 >= target_s:
            break
        number *= 2
    return number


def measure(
    fn: Callable[[], object],
    *,
    warmup: int = 3,
    repeat: int = 20,
    number: int = 1,
    disable_gc: bool = True,
) -> Stats:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeat`` samples of ``number`` calls.

    Each sample is divided by ``number``, so the statistics are per call.  ``gc.collect()``
    runs before timing and, with ``disable_gc``, the collector is off while timing.
    Pass ``number=0`` to pick ``number`` automatically (samples of about 10 ms).
    """
    return measure_interleaved(
        {"fn": fn}, warmup=warmup, repeat=repeat, number=number, disable_gc=disable_gc
    )["fn"]


def measure_interleaved(
    fns: Mapping[str, Callable[[], object]],
    *,
    warmup: int = 3,
    repeat: int = 20,
    number: int = 1,
    disable_gc: bool = True,
) -> dict[str, Stats]:
    """Like ``measure`` for several functions, alternating their samples round-robin.

    Use this when the figures will be compared with each other: slow drifts of the
    machine (other tenants, frequency changes) then hit every function alike.
    ``number=0`` calibrates each function separately.
    """
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    numbers = {n: (calibrate(fns[n]) if number <= 0 else number) for n in names}
    samples = {n: np.empty(repeat, dtype=np.float64) for n in names}
    gc.collect()
    gc_was_enabled = gc.isenabled()
    if disable_gc:
        gc.disable()
    try:
        clock = time.perf_counter
        for r in range(repeat):
            for name in names:
                fn = fns[name]
                t0 = clock()
                for _ in range(numbers[name]):
                    fn()
                samples[name][r] = clock() - t0
    finally:
        if disable_gc and gc_was_enabled:
            gc.enable()
    out = {}
    for name in names:
        s = samples[name] / numbers[name]
        p10, median, p90 = np.percentile(s, [10.0, 50.0, 90.0])
        out[name] = Stats(
            float(median), float(p10), float(p90), float(s.mean()), repeat, numbers[name]
        )
    return out


def tfenv_available() -> bool:
    """True if the side virtualenv with TensorFlow exists (``benchmarks/setup_tf_env.sh``)."""
    return TFENV_PYTHON.exists()


def peer_tf(name: str, /, *, peer_timeout: float = 600.0, **params: Any) -> dict[str, Any] | None:
    """Run TensorFlow peer benchmark ``name`` in ``.tfenv`` and return its JSON result.

    ``params`` are passed as ``--params JSON`` to ``benchmarks/peer_tf.py``.  Returns
    ``None`` (after printing a note) if ``.tfenv`` is missing; raises ``RuntimeError``
    if the subprocess fails or prints no JSON line.  ``peer_timeout`` bounds the
    subprocess's wall time in seconds.
    """
    if not tfenv_available():
        print(
            f"note: {TFENV_PYTHON} not found; skipping TensorFlow peer '{name}' "
            "(run: bash benchmarks/setup_tf_env.sh)",
            file=sys.stderr,
        )
        return None
    cmd = [str(TFENV_PYTHON), str(PEER_TF_SCRIPT), name, "--params", json.dumps(params)]
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.pop("PYTHONPATH", None)  # keep the main environment's packages out of .tfenv
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=peer_timeout, cwd=REPO_ROOT, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(f"peer_tf {name} failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}")
    for line in reversed(proc.stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    raise RuntimeError(f"peer_tf {name} printed no JSON line:\n{proc.stdout[-2000:]}")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value == 0.0 or (1e-3 <= abs(value) < 1e6):
            return f"{value:.4g}"
        return f"{value:.3e}"
    if value is None:
        return "-"
    return str(value)


def print_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    *,
    file: Any = None,
) -> None:
    """Print ``rows`` (dicts) as an aligned text table; columns default to first-seen key order."""
    if not rows:
        print("(no rows)", file=file)
        return
    if columns is None:
        seen: dict[str, None] = {}
        for row in rows:
            for key in row:
                seen.setdefault(key, None)
        columns = list(seen)
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]

    def is_num(s: str) -> bool:
        try:
            float(s)
        except ValueError:
            return False
        return True

    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for r in cells:
        print(
            "  ".join(
                (s.rjust(w) if is_num(s) else s.ljust(w)) for s, w in zip(r, widths, strict=True)
            ),
            file=file,
        )
