"""Compiled loops loaded off the step's thread.

Importing numba and loading a module's compiled loops from its cache takes 0.3-3 s (more on
a loaded machine, and a first compile longer still). Done inside a kernel on a task's event
loop, that stalls the task: its RPC reader and heartbeats stop, and a worker or PS daemon is
declared dead on its first step. So a kernel with a compiled fast path holds a `LoopLoader`:
its first use starts a background thread that imports the module (which compiles or loads
every signature it declares), and until the loop is there the kernel takes its NumPy path,
which gives the same values (up to the last bit of rounding where the compiled loop orders
its sums differently). `ready(timeout)` waits for it (tests, benchmarks' warm-up).
"""

from __future__ import annotations

import importlib
import logging
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
