"""Compiled loops loaded off the step's thread.

Importing numba and loading a module's compiled loops from its cache takes 0.3-3 s (more on
a loaded machine, and a first compile longer still). Done inside a kernel on a task's event
loop, that stalls the task: its RPC reader and heartbeats stop, and a worker or PS daemon is
declared dead on its first step. So a kernel with a compiled fast path holds a `LoopLoader`:
its first use starts a background thread that imports the module (which compiles or loads
every signature it declares), and until the loop is there the kernel takes its NumPy path,
which gives the same values (up to the last bit of rounding where the compiled loop orders
its sums differently). `ready(timeout)` waits for it (tests, benchmarks' warm-up).

A loop whose bits NumPy's path does not share (the float32 tanh of `fast_tanh`, the loops of
`f32_loops`) cannot switch paths mid-run: its kernel imports it on its first call, on the
step's thread, so every call of a run agrees. Its kernel factory says so at compile time
(`imports_on_first_call`), and a daemon imports what the graph it just compiled named on a
worker thread before it answers the registration (`import_first_use`, called by
`scheduler.worker_service`): the first step then finds the module loaded, and the task's event
loop, its RPC reader and heartbeats, never stall on the import (0.9 s here; a first compile
in a fresh checkout, several seconds).
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from typing import Any

log = logging.getLogger(__name__)


class LoopLoader:
    """The function `name` of the module `module`, imported on a background thread."""

    def __init__(self, module: str, name: str) -> None:
        self._module, self._name = module, name
        self.fn: Any = None            # the loop once loaded; None until then (or on failure)
        self._started = False
        self._done = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Begin loading, once; returns at once."""
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._load, name=f"load {self._module}", daemon=True).start()

    def ready(self, timeout: float | None = None) -> bool:
        """Start loading if needed and wait up to `timeout` seconds: True if the loop is there."""
        self.start()
        self._done.wait(timeout)
        return self.fn is not None

    def _load(self) -> None:
        try:
            self.fn = getattr(importlib.import_module(self._module), self._name)
        except Exception as e:  # noqa: BLE001 - the kernel keeps its NumPy path
            log.warning("compiled loop %s.%s unavailable (%s: %s); using NumPy",
                        self._module, self._name, type(e).__name__, e)
        finally:
            self._done.set()


_first_use: set[str] = set()  # modules kernels compiled since the last import_first_use need
_first_use_lock = threading.Lock()


def imports_on_first_call(module: str) -> None:
    """From a kernel factory: its kernel imports `module` on the step's thread at its first
    call (see the module's docstring). Recorded for `import_first_use` unless loaded."""
    if module not in sys.modules:
        with _first_use_lock:
            _first_use.add(module)


def first_use_pending() -> bool:
    """True when a kernel compiled since the last `import_first_use` named a module not loaded."""
    return bool(_first_use)


def import_first_use() -> None:
    """Import, on this thread, every module named by `imports_on_first_call` since the last
    call. A failure is logged: the kernel's own import at its first call reports it there."""
    with _first_use_lock:
        modules = sorted(_first_use)
        _first_use.clear()
    for m in modules:
        try:
            importlib.import_module(m)
        except Exception as e:  # noqa: BLE001 - the kernel's first call raises it in the step
            log.warning("preloading %s failed (%s: %s)", m, type(e).__name__, e)
