"""What a traced step records, on every device and task it runs on (RunOptions.trace_level).

A step runs traced when its caller asked for run metadata: its `StepContext.trace` is a
`StepTrace` (else None, and the executor records nothing). The executor appends one record
per node it ran (`scheduler.tracing.node_record`: name, device, start and end in
`time.perf_counter` seconds, op, outputs, pool bytes, thread); a remote task's records come
back on the wall clock with its ``run_graph`` reply and are appended to the master's trace.
`level` is the caller's `RunOptions.trace_level` (0 none ... 3 FULL_TRACE).

    trace = StepTrace(level=RunOptions.FULL_TRACE)
    trace.append(tracing.node_record("MatMul", device, t0, t1, "MatMul", outs))
"""

from __future__ import annotations


class StepTrace(list):
    """The node records of one traced step (`scheduler.tracing.node_record` tuples)."""

    def __init__(self, level: int = 1) -> None:
        super().__init__()
        self.level = level  # RunOptions.trace_level of the step
