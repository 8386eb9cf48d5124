"""Kernels of TF1's queue-based readers (`devices.file_sources.RecordReaderState`):

    TFRecordReaderV2() -> reader         attrs shared_name, compression_type
    TextLineReaderV2() -> reader         attrs shared_name, skip_header_lines
    FixedLengthRecordReaderV2() -> reader   attrs shared_name, record_bytes, header_bytes,
                                            footer_bytes, hop_bytes, encoding ("", ZLIB, GZIP)
        the reader resource, created on first use by name in the device's container
    ReaderReadV2(reader, queue) -> key: string[] (b"file:offset", b"file:line", b"file:index"),
                                   value: string[]
        the next record; when the reader's file is exhausted it dequeues the next file name
        from `queue` (a queue of file names, `string_input_producer`'s): asynchronous, since
        the queue may be empty. A closed, empty queue ends the reads with OutOfRangeError,
        as in TF.
    ReaderReadUpToV2(reader, queue, num_records: int64[]) -> keys: string[k], values: string[k]
        1 <= k <= num_records records of one file (fewer at a file's end, as TF gives)
    ReaderNumRecordsProducedV2(reader) -> int64[]    ReaderResetV2(reader)

`ReaderReadV2` and `ReaderReadUpToV2` have the two halves of an asynchronous kernel (see
`devices.kernels.queue`): ``poll`` reads without waiting (the usual case: a record is there, or
a file name is), and ``compute`` waits for a file name through a `Waiter` on the queue.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devices.errors import InvalidArgumentError
from devices.file_sources import RecordReaderState, opener
from devices.kernels.registry import KernelContext, register_kernel
from devices.queues import ONE, QueueBase
from devices.tfrecord_io import normalize_compression
from devices.waits import Wait, Waiter


def _reader_factory(kind: str) -> Any:
    def factory(k: KernelContext) -> Any:
        name = k.attrs.get("shared_name") or k.name
        attrs = {**k.attrs, "compression": normalize_compression(
            k.attrs.get("compression_type") or k.attrs.get("encoding") or "")}
        open_file = opener(kind, attrs)
        mgr = k.device.resources
        cache: list[Any] = [-1, None]

        def compute() -> tuple:
            if cache[0] != mgr.generation:
                r = mgr.lookup_or_create("", name, lambda: RecordReaderState(name, open_file))
                if not isinstance(r, RecordReaderState):
                    raise InvalidArgumentError(f"resource '{name}' is a {type(r).__name__}, "
                                               f"not a reader", node=k.name,
                                               device=k.device.name)
                cache[:] = [mgr.generation, r]
            return (cache[1],)
        return compute
    return factory


for _op, _kind in (("TFRecordReaderV2", "tfrecord"), ("TextLineReaderV2", "textline"),
                   ("FixedLengthRecordReaderV2", "fixed_length")):
    register_kernel(_op, stateful=True, device_types=("CPU",))(_reader_factory(_kind))


def _check_queue(q: Any, node: str) -> QueueBase:
    if not isinstance(q, QueueBase):
        raise InvalidArgumentError(f"a reader reads file names from a queue (e.g. "
                                   f"af.train.string_input_producer(...)), got "
                                   f"{type(q).__name__}", node=node)
    return q


@register_kernel("ReaderReadV2", is_async=True, stateful=True, device_types=("CPU",))
def _read(k: KernelContext) -> Any:
    def poll(ctx: Any, reader: RecordReaderState, q: Any) -> tuple | None:
        q = _check_queue(q, k.name)
        while (rec := reader.next_record()) is None:
            got = q.try_dequeue(1, ONE)
            if got is None:
                return None
            reader.open(got[0])
        return rec

    async def compute(ctx: Any, reader: RecordReaderState, q: Any) -> tuple:
        q = _check_queue(q, k.name)
        while (rec := reader.next_record()) is None:
            w = Waiter(Wait("read", q.describe(), k.name, k.device.name,
                            ctx.step_id if ctx else -1), ("deq", 1, ONE))
            q.register(w)
            got = await w.wait(ctx, q.cancel)
            reader.open(got[0])
        return rec

    compute.poll = poll  # type: ignore[attr-defined]
    return compute


@register_kernel("ReaderReadUpToV2", is_async=True, stateful=True, device_types=("CPU",))
def _read_up_to(k: KernelContext) -> Any:
    def count(n: Any) -> int:
        n = int(n)
        if n <= 0:
            raise InvalidArgumentError(f"read_up_to needs num_records > 0, got {n}",
                                       node=k.name)
        return n

    def poll(ctx: Any, reader: RecordReaderState, q: Any, n: Any) -> tuple | None:
        q, want = _check_queue(q, k.name), count(n)
        while (recs := reader.next_records(want)) is None:
            got = q.try_dequeue(1, ONE)
            if got is None:
                return None
            reader.open(got[0])
        return recs

    async def compute(ctx: Any, reader: RecordReaderState, q: Any, n: Any) -> tuple:
        q, want = _check_queue(q, k.name), count(n)
        while (recs := reader.next_records(want)) is None:
            w = Waiter(Wait("read_up_to", q.describe(), k.name, k.device.name,
                            ctx.step_id if ctx else -1), ("deq", 1, ONE))
            q.register(w)
            got = await w.wait(ctx, q.cancel)
            reader.open(got[0])
        return recs

    compute.poll = poll  # type: ignore[attr-defined]
    return compute


@register_kernel("ReaderNumRecordsProducedV2", stateful=True, device_types=("CPU",))
def _num_records(k: KernelContext) -> Any:
    return lambda reader: (np.asarray(reader.records_produced, dtype=np.int64),)


@register_kernel("ReaderResetV2", stateful=True, device_types=("CPU",))
def _reset(k: KernelContext) -> Any:
    def compute(reader: RecordReaderState) -> tuple:
        reader.reset()
        return ()
    return compute
