"""`af.train.Coordinator` (TF1): a stop flag shared by the threads of an input pipeline and the
training loop, with the first exception kept and re-raised at `join`.

    coord = af.train.Coordinator()
    threads = af.train.start_queue_runners(sess, coord=coord)
    try:
        while not coord.should_stop():
            sess.run(train_op)
    except af.errors.OutOfRangeError:
        pass                             # the input ran out: a clean end
    finally:
        coord.request_stop()
    coord.join(threads)

State: `_stop` (a threading.Event, set once a stop is requested), `_exc` (the first exception
reported through `request_stop(ex)`, re-raised by `join`), `_threads` (registered threads),
all guarded by `_lock`. Exceptions of `clean_stop_exception_types` (default OutOfRangeError:
the end of the data) stop the coordinator without being re-raised.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from devices.errors import OutOfRangeError


class Coordinator:
    def __init__(self, clean_stop_exception_types: tuple[type[BaseException], ...] | None = None):
        self._clean = (OutOfRangeError,) if clean_stop_exception_types is None else tuple(
            clean_stop_exception_types)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._exc: BaseException | None = None
        self._threads: set[threading.Thread] = set()
        self._joined = False

    def request_stop(self, ex: BaseException | None = None) -> None:
        """Ask every thread to stop; keep `ex` (the first one) to re-raise in `join`."""
        with self._lock:
            if ex is not None and not isinstance(ex, self._clean) and self._exc is None:
                if isinstance(ex, tuple):  # sys.exc_info()
                    ex = ex[1]
                self._exc = ex
            self._stop.set()

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def clear_stop(self) -> None:
        """Reset the flag and the kept exception (to reuse the coordinator)."""
        with self._lock:
            self._joined = False
            self._exc = None
            self._stop.clear()

    def wait_for_stop(self, timeout: float | None = None) -> bool:
        return self._stop.wait(timeout)

    @contextlib.contextmanager
    def stop_on_exception(self) -> Iterator[None]:
        """Report any exception raised in the block to the coordinator (and swallow it)."""
        try:
            yield
        except BaseException:  # noqa: BLE001 - reported, re-raised by join
            self.request_stop(sys.exc_info()[1])

    def register_thread(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads.add(thread)

    def raise_requested_exception(self) -> None:
        with self._lock:
            if self._exc is not None:
                raise self._exc

    def join(self, threads: Iterable[threading.Thread] | None = None,
             stop_grace_period_secs: float = 120, ignore_live_threads: bool = False) -> None:
        """Wait for a stop request, then for the threads (registered and given) to end, up to
        `stop_grace_period_secs` after the stop; re-raise the kept exception. Threads still
        alive then raise RuntimeError unless `ignore_live_threads`."""
        with self._lock:
            all_threads = set(self._threads) | set(threads or ())
        while not self._stop.wait(0.1):
            if not any(t.is_alive() for t in all_threads):
                break
        end = time.monotonic() + stop_grace_period_secs
        for t in all_threads:
            t.join(max(0.0, end - time.monotonic()))
        self._joined = True
        live = [t.name for t in all_threads if t.is_alive()]
        with self._lock:
            exc = self._exc
        if exc is not None:
            raise exc
        if live and not ignore_live_threads:
            raise RuntimeError(
                f"coordinator stopped with threads still running: {', '.join(live)}; they "
                f"did not end within stop_grace_period_secs={stop_grace_period_secs}")

    @property
    def joined(self) -> bool:
        return self._joined


class LooperThread(threading.Thread):
    """A thread that calls `target(*args)` until the coordinator stops (TF1's LooperThread,
    without the timer variant)."""

    def __init__(self, coord: Coordinator, target: Any, args: tuple = ()):
        super().__init__(daemon=True)
        self._coord, self._target, self._args = coord, target, args
        coord.register_thread(self)

    def run(self) -> None:
        with self._coord.stop_on_exception():
            while not self._coord.should_stop():
                self._target(*self._args)
