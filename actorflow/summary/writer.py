"""`FileWriter`: TensorBoard event files, as TF1's ``tf.summary.FileWriter`` writes them.

What it owns: one event file in `logdir` (``events.out.tfevents.<time>.<host>.<pid>.<n><suffix>``,
TFRecord-framed `Event` protos; tensorboardX's `EventsWriter` and record writer do the framing
and CRCs), a bounded queue of pending events (`max_queue`), and one writer thread that drains
the queue and flushes the file at least every `flush_secs`. `flush()` returns once every event
added before it is on disk; `close()` flushes and stops the thread; `reopen()` starts a new file.

Only the process that calls it writes files: on a cluster, summaries are computed where their
inputs live and come back as fetched strings (see `actorflow.summary.summary_ops`).

    writer = af.summary.FileWriter("logs/run1", sess.graph)
    writer.add_summary(sess.run(merged), global_step=step)
    writer.add_run_metadata(run_metadata, "step100", global_step=100)
    writer.close()

`FileWriterCache.get(logdir)` returns one shared writer per directory, as TF's does.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from typing import Any

import numpy as np

from actorflow.summary.protos import graph_def_proto, run_metadata_proto
from devices.errors import InvalidArgumentError

_FILE_IDS = itertools.count()
_FLUSH = object()
_STOP = object()


def _pb() -> tuple[Any, Any]:
    from tensorboardX.proto import event_pb2, summary_pb2
    return event_pb2, summary_pb2


class FileWriter:
    """Writes `Summary` protos and other events to an event file in `logdir`."""

    def __init__(self, logdir: str, graph: Any = None, max_queue: int = 10,
                 flush_secs: float = 120, graph_def: Any = None,
                 filename_suffix: str | None = None, session: Any = None) -> None:
        if not isinstance(logdir, str | os.PathLike) or not str(logdir):
            raise InvalidArgumentError(f"FileWriter needs a log directory, got {logdir!r}")
        if max_queue < 1 or flush_secs <= 0:
            raise InvalidArgumentError("FileWriter: max_queue must be >= 1 and flush_secs > 0")
        self._logdir = str(logdir)
        self._max_queue = int(max_queue)
        self._flush_secs = float(flush_secs)
        self._suffix = filename_suffix or ""
        self._closed = True
        self._open()
        if graph is not None or graph_def is not None:
            self.add_graph(graph, graph_def=graph_def)

    # -- lifecycle --------------------------------------------------------------------------
    def _open(self) -> None:
        from tensorboardX.event_file_writer import EventsWriter
        os.makedirs(self._logdir, exist_ok=True)
        # .<pid>.<n> as TF2 names files: two writers (or a reopen) in one second never collide
        suffix = f".{os.getpid()}.{next(_FILE_IDS)}{self._suffix}"
        self._file = EventsWriter(os.path.join(self._logdir, "events"), suffix)
        self._queue: queue.Queue = queue.Queue(self._max_queue)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="af-summary-writer",
                                        daemon=True)
        self._closed = False
        self._thread.start()

    def _drain(self) -> None:
        """The writer thread: the only code that touches the file while the writer is open."""
        next_flush = time.monotonic() + self._flush_secs
        pending = False
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, next_flush - time.monotonic()))
            except queue.Empty:
                item = None
            try:
                if item is _STOP:
                    self._file.flush()
                    return
                if item is _FLUSH or (item is None and pending):
                    self._file.flush()
                    pending = False
                elif item is not None:
                    self._file.write_event(item)
                    pending = True
            except BaseException as e:  # kept and raised by the next call in the user's thread
                self._error = e
            finally:
                if item is not None:
                    self._queue.task_done()
            if time.monotonic() >= next_flush:
                if pending:
                    self._file.flush()
                    pending = False
                next_flush = time.monotonic() + self._flush_secs

    def _check(self) -> None:
        if self._error is not None:
            e, self._error = self._error, None
            raise InvalidArgumentError(f"writing events to {self._logdir} failed: {e}") from e

    def get_logdir(self) -> str:
        """The directory this writer's event file is in."""
        return self._logdir

    def flush(self) -> None:
        """Return once every event added so far is written and flushed to disk."""
        if self._closed:
            return
        self._queue.put(_FLUSH)
        self._queue.join()
        self._check()

    def close(self) -> None:
        """Flush, stop the writer thread and close the file (`reopen` starts a new one)."""
        if self._closed:
            return
        self._queue.put(_STOP)
        self._thread.join()
        self._file.close()
        self._closed = True
        self._check()

    def reopen(self) -> None:
        """After `close`, start a new event file in the same directory."""
        if self._closed:
            self._open()

    def __enter__(self) -> FileWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- events -----------------------------------------------------------------------------
    def add_event(self, event: Any) -> None:
        """Queue one `Event` proto (its wall_time set to now if unset)."""
        if self._closed:
            raise InvalidArgumentError(
                f"this FileWriter ({self._logdir}) is closed; call reopen() first")
        self._check()
        if not event.wall_time:
            event.wall_time = time.time()
        self._queue.put(event)

    def _event(self, global_step: int | None, **fields: Any) -> None:
        event_pb2, _ = _pb()
        ev = event_pb2.Event(wall_time=time.time(), **fields)
        if global_step is not None:
            ev.step = int(global_step)
        self.add_event(ev)

    def add_summary(self, summary: Any, global_step: int | None = None) -> None:
        """Add a `Summary`: the bytes a summary op returns (or a Summary proto)."""
        _, summary_pb2 = _pb()
        if isinstance(summary, np.ndarray) and summary.dtype.hasobject and summary.size == 1:
            summary = summary.reshape(-1)[0]
        if isinstance(summary, bytes):
            try:
                summary = summary_pb2.Summary.FromString(summary)
            except Exception:
                raise InvalidArgumentError(
                    "add_summary got bytes that are not a serialized Summary; pass what a "
                    "summary op (af.summary.scalar, merge_all, ...) returned") from None
        if not isinstance(summary, summary_pb2.Summary):
            raise InvalidArgumentError(
                f"add_summary takes a Summary (the bytes sess.run returns for a summary op), "
                f"got {type(summary).__name__}")
        self._event(global_step, summary=summary)

    def add_session_log(self, session_log: Any, global_step: int | None = None) -> None:
        """Add a `SessionLog` (e.g. ``SessionLog(status=SessionLog.START)`` on a restart)."""
        self._event(global_step, session_log=session_log)

    def add_graph(self, graph: Any = None, global_step: int | None = None,
                  graph_def: Any = None, placement: dict[str, str] | None = None) -> None:
        """Add the graph for TensorBoard's Graphs tab: an `af.Graph`, or `graph_def` (our IR
        or a GraphDef proto). `placement` (node -> device, e.g. ``RunMetadata.placement``)
        overrides the requested devices with where the nodes ran."""
        if graph is None and graph_def is None:
            raise InvalidArgumentError("add_graph needs a graph or a graph_def")
        src = graph if graph is not None else graph_def
        proto = src if hasattr(src, "SerializeToString") else graph_def_proto(src, placement)
        self._event(global_step, graph_def=proto.SerializeToString())

    def add_run_metadata(self, run_metadata: Any, tag: str,
                         global_step: int | None = None) -> None:
        """Add a step's `RunMetadata` under `tag` (per-node compute time and memory in
        TensorBoard's Graphs tab)."""
        event_pb2, _ = _pb()
        proto = run_metadata if hasattr(run_metadata, "SerializeToString") else \
            run_metadata_proto(run_metadata)
        self._event(global_step, tagged_run_metadata=event_pb2.TaggedRunMetadata(
            tag=tag, run_metadata=proto.SerializeToString()))


class FileWriterCache:
    """One `FileWriter` per log directory, shared by whoever asks (TF's FileWriterCache)."""

    _cache: dict[str, FileWriter] = {}
    _lock = threading.Lock()

    @staticmethod
    def get(logdir: str) -> FileWriter:
        key = os.path.abspath(str(logdir))
        with FileWriterCache._lock:
            w = FileWriterCache._cache.get(key)
            if w is None:
                w = FileWriterCache._cache[key] = FileWriter(str(logdir))
            return w

    @staticmethod
    def clear() -> None:
        """Close every cached writer and forget them."""
        with FileWriterCache._lock:
            for w in FileWriterCache._cache.values():
                w.close()
            FileWriterCache._cache.clear()
