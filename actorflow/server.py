"""Clusters as TensorFlow users know them: `ClusterSpec`, an in-process `Server`, and the
distributed runtime behind ``af.Session("af://host:port")``.

    cluster = af.ClusterSpec({"ps": ["127.0.0.1:2222"], "worker": ["127.0.0.1:2223"]})
    server = af.Server(cluster, job_name="worker", task_index=0)   # serves on a thread
    with af.device("/job:ps/task:0"):
        w = af.Variable(af.zeros((3,)))
    with af.Session(server.target) as s:                          # "af://127.0.0.1:2223"
        s.run(w.initializer)

A `Server` runs this task's worker service (`scheduler.worker_service`) on a background trio
thread: the same service the standalone daemon (``actorflow worker``, `actorflow.cli`) runs.
Heartbeats and connection waits come from ``config.rpc_options`` (an `RPCOptions`) when the
`ConfigProto` carries one.

Trust (SECURITY.md): ``RPCOptions(key_dir=DIR)`` (a directory ``actorflow keys DIR`` made)
makes the task's TCP port a CURVE server that takes only the clients DIR authorizes, and
makes sessions prove themselves with DIR's client key; a `Server` asked to bind an address
other than loopback without keys refuses to start unless ``RPCOptions(insecure=True)``.
Tasks on one host talk over Unix sockets in a private directory, checked by uid, with no
CURVE.

    keys = af.ConfigProto(rpc_options=af.RPCOptions(key_dir="/etc/actorflow/keys"))
    server = af.Server(cluster, "ps", 0, config=keys, bind="0.0.0.0")
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import trio

from actorflow.config import ConfigProto, RPCOptions
from devices.errors import InvalidArgumentError
from scheduler.distributed import DistributedRuntime, MasterOptions
from scheduler.worker_service import WorkerConfig, WorkerService

__all__ = ["ClusterSpec", "RPCOptions", "Server"]


def rpc_options_of(config: ConfigProto | None) -> RPCOptions:
    return config.rpc_options if config is not None else RPCOptions()


class ClusterSpec:
    """The tasks of a cluster: job name -> task index -> ``"host:port"``.

    Built from ``{"ps": ["h:1", "h:2"], "worker": {0: "h:3", 2: "h:4"}}`` (a list numbers its
    tasks from 0; a dict may leave gaps) or from another ClusterSpec.
    """

    def __init__(self, cluster: ClusterSpec | Mapping[str, Any] | None = None):
        if isinstance(cluster, ClusterSpec):
            self._jobs = {j: dict(t) for j, t in cluster._jobs.items()}
            return
        self._jobs: dict[str, dict[int, str]] = {}
        if cluster is None:
            return
        if not isinstance(cluster, Mapping):
            raise InvalidArgumentError(
                f"a ClusterSpec is built from a dict of job name -> list of 'host:port', got "
                f"{type(cluster).__name__}")
        for job, tasks in cluster.items():
            if not isinstance(job, str) or not job or "/" in job or ":" in job:
                raise InvalidArgumentError(f"job name {job!r} must be a non-empty str without "
                                           "'/' or ':'")
            if isinstance(tasks, str):
                raise InvalidArgumentError(
                    f"job '{job}': tasks must be a list of 'host:port' (got the str {tasks!r}; "
                    f"write [{tasks!r}])")
            if isinstance(tasks, Mapping):
                items = [(_index(job, i), a) for i, a in tasks.items()]
            elif isinstance(tasks, Sequence):
                items = list(enumerate(tasks))
            else:
                raise InvalidArgumentError(
                    f"job '{job}': tasks must be a list or dict of 'host:port', got "
                    f"{type(tasks).__name__}")
            self._jobs[job] = {i: _address(job, i, a) for i, a in sorted(items)}

    @property
    def jobs(self) -> list[str]:
        return sorted(self._jobs)

    def num_tasks(self, job_name: str) -> int:
        return len(self._tasks(job_name))

    def task_indices(self, job_name: str) -> list[int]:
        return sorted(self._tasks(job_name))

    def task_address(self, job_name: str, task_index: int) -> str:
        tasks = self._tasks(job_name)
        try:
            return tasks[task_index]
        except KeyError:
            raise InvalidArgumentError(
                f"job '{job_name}' has no task {task_index}; its tasks: {sorted(tasks)}") from None

    def job_tasks(self, job_name: str) -> list[str | None]:
        """The addresses of `job_name`'s tasks by index (None where a sparse job has a gap)."""
        tasks = self._tasks(job_name)
        return [tasks.get(i) for i in range(max(tasks) + 1)] if tasks else []

    def as_dict(self) -> dict[str, list[str] | dict[int, str]]:
        out: dict[str, list[str] | dict[int, str]] = {}
        for job, tasks in self._jobs.items():
            dense = sorted(tasks) == list(range(len(tasks)))
            out[job] = [tasks[i] for i in range(len(tasks))] if dense else dict(tasks)
        return out

    def as_task_map(self) -> dict[str, dict[int, str]]:
        """job -> {index: address}: the form the runtime takes."""
        return {j: dict(t) for j, t in self._jobs.items()}

    def _tasks(self, job_name: str) -> dict[int, str]:
        try:
            return self._jobs[job_name]
        except KeyError:
            raise InvalidArgumentError(
                f"no job '{job_name}' in the cluster; its jobs: {', '.join(self.jobs)}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClusterSpec) and self._jobs == other._jobs

    def __bool__(self) -> bool:
        return bool(self._jobs)

    def __repr__(self) -> str:
        return f"ClusterSpec({self.as_dict()!r})"


def _index(job: str, i: Any) -> int:
    try:
        idx = int(i)
    except (TypeError, ValueError):
        idx = -1
    if idx < 0 or (isinstance(i, float) and i != idx):
        raise InvalidArgumentError(f"job '{job}': task index {i!r} must be an int >= 0")
    return idx


def _address(job: str, i: int, address: Any) -> str:
    host, sep, port = address.rpartition(":") if isinstance(address, str) else ("", "", "")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise InvalidArgumentError(
            f"task {i} of job '{job}': address {address!r} is not 'host:port' (e.g. "
            "'127.0.0.1:2222')")
    return address


class Server:
    """This process's task of a cluster: its worker service, on a background trio thread.

    ``Server(cluster, job_name, task_index)`` serves the task's devices on its port (bound on
    127.0.0.1 unless `bind` names another interface; port 0 picks a free one); `target` is the
    address sessions use. Stop it with `stop()` (or use it as a context manager); `join()`
    blocks until it stops.
    """

    def __init__(self, server_or_cluster_def: ClusterSpec | Mapping[str, Any],
                 job_name: str | None = None, task_index: int | None = None,
                 protocol: str | None = None, config: ConfigProto | None = None,
                 start: bool = True, *, bind: str = "127.0.0.1"):
        if protocol not in (None, "af", "zmq"):
            raise InvalidArgumentError(f"protocol {protocol!r}: actorflow speaks 'af' (ZeroMQ)")
        cluster = ClusterSpec(server_or_cluster_def)
        if job_name is None:
            if len(cluster.jobs) != 1:
                raise InvalidArgumentError(
                    f"job_name is needed: the cluster has jobs {cluster.jobs}")
            job_name = cluster.jobs[0]
        if task_index is None:
            indices = cluster.task_indices(job_name)
            if len(indices) != 1:
                raise InvalidArgumentError(
                    f"task_index is needed: job '{job_name}' has tasks {indices}")
            task_index = indices[0]
        cluster.task_address(job_name, task_index)  # validates both
        self.cluster_spec = cluster
        self.job_name = job_name
        self.task_index = task_index
        self.config = config or ConfigProto()
        opts = rpc_options_of(self.config)
        self._service = WorkerService(WorkerConfig(
            job=job_name, task=task_index, cluster=cluster.as_task_map(), bind_host=bind,
            runtime=self.config.to_runtime(), rpc=opts.to_rpc_config()))
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._error: BaseException | None = None
        self._stopped = threading.Event()
        if start:
            self.start()

    @classmethod
    def create_local_server(cls, config: ConfigProto | None = None,
                            start: bool = True) -> Server:
        """A one-task cluster on a free port of 127.0.0.1."""
        return cls({"localhost": ["127.0.0.1:0"]}, "localhost", 0, config=config, start=start)

    @property
    def target(self) -> str:
        """``"af://host:port"``: what `af.Session` takes to run steps on this cluster."""
        if self._service.endpoint is None:
            raise InvalidArgumentError("the server has not started; call start() first")
        return "af://" + self._service.cluster[self.job_name][self.task_index]

    @property
    def server_def(self) -> dict[str, Any]:
        return {"cluster": self.cluster_spec.as_dict(), "job_name": self.job_name,
                "task_index": self.task_index}

    def start(self) -> None:
        if self._thread is not None:
            return
        started = threading.Event()

        async def main() -> None:
            with trio.CancelScope() as scope:
                self._scope = scope
                self._token = trio.lowlevel.current_trio_token()
                async with trio.open_nursery() as nursery:
                    await nursery.start(self._service.serve)
                    started.set()

        def thread_main() -> None:
            try:
                trio.run(main)
            except BaseException as e:  # noqa: BLE001 - reported to start()/join()
                while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
                    e = e.exceptions[0]
                self._error = e
            finally:
                started.set()
                self._stopped.set()

        name = f"actorflow-server-{self.job_name}-{self.task_index}"
        self._thread = threading.Thread(target=thread_main, name=name, daemon=True)
        self._thread.start()
        started.wait()
        if self._error is not None:
            raise self._error

    def join(self) -> None:
        """Block until the server stops (`stop()` from another thread, or a failure)."""
        if self._thread is None:
            return
        self._stopped.wait()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._token is not None and self._scope is not None:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._scope.cancel)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def statistics(self) -> Any:
        return self._service.statistics()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self._service.endpoint or "not started"
        return f"<af.Server /job:{self.job_name}/task:{self.task_index} at {where}>"


def connect_runtime(target: str, config: ConfigProto) -> DistributedRuntime:
    """The runtime behind ``af.Session("af://host:port", config=config)``."""
    opts = rpc_options_of(config)
    timeout = config.operation_timeout_in_ms / 1000 if config.operation_timeout_in_ms else None
    filters = tuple(config.device_filters) if config is not None else ()
    return DistributedRuntime(target, config.to_runtime(), MasterOptions(
        rpc=opts.to_rpc_config(), step_timeout=timeout, connect_timeout=opts.connect_timeout,
        device_filters=filters))
