"""`af.train.QueueRunner` (TF1): threads that run enqueue ops in a loop to keep a queue fed.

Each enqueue op gets one thread that runs it until it fails. When the last of them ends
because its input ran out (OutOfRangeError, or the queue closed: CancelledError), the runner
runs `close_op`, so consumers drain the queue and then get OutOfRangeError: the end of the
data travels down the pipeline. When the coordinator stops, the runner runs `cancel_op`
(close with cancel_pending_enqueues), which wakes its own threads blocked on a full queue, so
they end at once. Any other error is reported to the coordinator (and re-raised by `join`).

    qr = af.train.QueueRunner(queue, [enqueue_op] * 2)
    af.train.add_queue_runner(qr)
    threads = af.train.start_queue_runners(sess, coord)
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from actorflow.graph import get_default_graph
from devices.errors import CancelledError, OpError, OutOfRangeError

QUEUE_RUNNERS = "queue_runners"


class QueueRunner:
    def __init__(self, queue: Any = None, enqueue_ops: Sequence[Any] | None = None,
                 close_op: Any = None, cancel_op: Any = None,
                 queue_closed_exception_types: tuple[type[BaseException], ...] | None = None):
        if queue is None or not enqueue_ops:
            raise ValueError("QueueRunner needs a queue and at least one enqueue op")
        self._queue = queue
        self._enqueue_ops = list(enqueue_ops)
        self._close_op = close_op if close_op is not None else queue.close()
        self._cancel_op = cancel_op if cancel_op is not None else queue.close(
            cancel_pending_enqueues=True)
        self._closed_types = queue_closed_exception_types or (OutOfRangeError, CancelledError)
        self._lock = threading.Lock()
        self._runs: dict[Any, int] = {}
        self._exceptions: list[BaseException] = []

    @property
    def queue(self) -> Any:
        return self._queue

    @property
    def enqueue_ops(self) -> list[Any]:
        return list(self._enqueue_ops)

    @property
    def close_op(self) -> Any:
        return self._close_op

    @property
    def cancel_op(self) -> Any:
        return self._cancel_op

    @property
    def exceptions_raised(self) -> list[BaseException]:
        return list(self._exceptions)

    @property
    def name(self) -> str:
        return self._queue.name

    def _run(self, sess: Any, enqueue_op: Any, coord: Any) -> None:
        decremented = False
        try:
            while coord is None or not coord.should_stop():
                try:
                    sess.run(enqueue_op)
                except self._closed_types:
                    with self._lock:
                        self._runs[sess] -= 1
                        decremented = True
                        last = self._runs[sess] == 0
                    if last:
                        try:
                            sess.run(self._close_op)
                        except OpError:
                            pass  # the session is closing, or the queue is closed already
                    return
        except Exception as e:  # noqa: BLE001 - reported to the coordinator
            if coord is not None and not (getattr(sess, "closed", False)):
                coord.request_stop(e)
            else:
                with self._lock:
                    self._exceptions.append(e)
                if coord is None:
                    raise
        finally:
            if not decremented:
                with self._lock:
                    self._runs[sess] -= 1

    def _close_on_stop(self, sess: Any, coord: Any) -> None:
        coord.wait_for_stop()
        try:
            sess.run(self._cancel_op)
        except Exception:  # noqa: BLE001 - the session may be closing; nothing left to wake
            pass

    def create_threads(self, sess: Any, coord: Any = None, daemon: bool = False,
                       start: bool = False) -> list[threading.Thread]:
        """One thread per enqueue op (and one that cancels pending enqueues when the
        coordinator stops); started if `start`."""
        with self._lock:
            if self._runs.get(sess, 0) > 0:
                return []  # already running for this session
            self._runs[sess] = len(self._enqueue_ops)
        threads = [threading.Thread(target=self._run, args=(sess, op, coord), daemon=daemon,
                                    name=f"QueueRunner:{self.name}:{i}")
                   for i, op in enumerate(self._enqueue_ops)]
        if coord is not None:
            threads.append(threading.Thread(target=self._close_on_stop, args=(sess, coord),
                                            daemon=daemon, name=f"QueueRunner:{self.name}:stop"))
        for t in threads:
            if coord is not None:
                coord.register_thread(t)
            if start:
                t.start()
        return threads


def add_queue_runner(qr: QueueRunner, collection: str = QUEUE_RUNNERS) -> None:
    get_default_graph().add_to_collection(collection, qr)


def start_queue_runners(sess: Any = None, coord: Any = None, daemon: bool = True,
                        start: bool = True, collection: str = QUEUE_RUNNERS
                        ) -> list[threading.Thread]:
    """Start the threads of every QueueRunner in the graph's `collection`."""
    if sess is None:
        from actorflow.session import get_default_session

        sess = get_default_session()
        if sess is None:
            raise ValueError("start_queue_runners needs a session: pass sess= or call it "
                             "inside 'with sess.as_default():'")
    graph = getattr(sess, "graph", None) or get_default_graph()
    threads: list[threading.Thread] = []
    for qr in graph.get_collection(collection):
        threads.extend(qr.create_threads(sess, coord=coord, daemon=daemon, start=start))
    return threads
