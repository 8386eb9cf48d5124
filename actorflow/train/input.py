"""TF1 input pipelines built from queues and QueueRunners (WP §4.5-4.6, OSDI Fig. 2):
producers (`input_producer`, `range_input_producer`, `slice_input_producer`, `limit_epochs`)
and batchers (`batch`, `shuffle_batch`, `batch_join`, `shuffle_batch_join`).

Every function adds a `QueueRunner` to the graph's ``queue_runners`` collection; run
`af.train.start_queue_runners(sess, coord)` to start its threads. With `num_epochs`, a local
counter variable (initialize with `af.local_variables_initializer()`) ends the producer after
that many passes: its enqueue raises OutOfRangeError, the runner closes the queue, and the
batchers downstream drain and end with OutOfRangeError in turn.

    x, y = af.train.slice_input_producer([images, labels], num_epochs=5, seed=1)
    xb, yb = af.train.batch([x, y], batch_size=32)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actorflow.graph import Tensor, control_dependencies, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops.core_ops import identity
from actorflow.ops.data_flow_ops import (
    FIFOQueue,
    PaddingFIFOQueue,
    RandomShuffleQueue,
    count_up_to,
)
from actorflow.ops.index_ops import gather
from actorflow.ops.partition_ops import range as range_op
from actorflow.ops.random_ops import random_shuffle
from actorflow.train.queue_runner import QueueRunner, add_queue_runner
from devices import dtypes

__all__ = ["limit_epochs", "input_producer", "range_input_producer", "slice_input_producer",
           "batch", "shuffle_batch", "batch_join", "shuffle_batch_join"]


def limit_epochs(tensor: Any, num_epochs: int | None = None, name: str | None = None) -> Tensor:
    """`tensor`, but running it more than `num_epochs` times raises OutOfRangeError."""
    t = convert_to_tensor(tensor)
    if num_epochs is None:
        return t
    if num_epochs <= 0:
        raise ValueError(f"num_epochs must be > 0, got {num_epochs}")
    from actorflow.variables import GraphKeys, Variable

    with name_scope(name, "limit_epochs"):
        epochs = Variable(0, dtype=dtypes.int64, trainable=False, name="epochs",
                          collections=[GraphKeys.LOCAL_VARIABLES])
        counter = count_up_to(epochs, num_epochs)
        with control_dependencies([counter]):
            return identity(t)


def input_producer(input_tensor: Any, element_shape: Any = None, num_epochs: int | None = None,
                   shuffle: bool = True, seed: int | None = None, capacity: int = 32,
                   shared_name: str | None = None, name: str | None = None,
                   cancel_op: Any = None) -> FIFOQueue:
    """A queue fed with the rows of `input_tensor` (shuffled per epoch if `shuffle`)."""
    with name_scope(name, "input_producer"):
        t = convert_to_tensor(input_tensor)
        if shuffle:
            t = random_shuffle(t, seed=seed)
        t = limit_epochs(t, num_epochs)
        shape = element_shape if element_shape is not None else t._shape[1:] \
            if t._shape is not None else None
        q = FIFOQueue(capacity, [t.dtype], shapes=None if shape is None else [shape],
                      shared_name=shared_name, name="fifo_queue")
        add_queue_runner(QueueRunner(q, [q.enqueue_many([t])], cancel_op=cancel_op))
        return q


def range_input_producer(limit: int, num_epochs: int | None = None, shuffle: bool = True,
                         seed: int | None = None, capacity: int = 32,
                         shared_name: str | None = None, name: str | None = None) -> FIFOQueue:
    """A queue of the integers 0..limit-1, once per epoch."""
    with name_scope(name, "input_producer"):
        r = range_op(limit, dtype=dtypes.int32)
        return input_producer(r, (), num_epochs, shuffle, seed, capacity, shared_name,
                              "range_input")


def slice_input_producer(tensor_list: Sequence[Any], num_epochs: int | None = None,
                         shuffle: bool = True, seed: int | None = None, capacity: int = 32,
                         shared_name: str | None = None, name: str | None = None) -> list[Tensor]:
    """One row (the same index) of every tensor in `tensor_list`, per dequeue."""
    with name_scope(name, "input_producer"):
        ts = [convert_to_tensor(t) for t in tensor_list]
        if not ts:
            raise ValueError("slice_input_producer needs at least one tensor")
        n = ts[0]._shape[0] if ts[0]._shape else None
        if n is None:
            raise ValueError("slice_input_producer needs tensors with a known first dimension")
        q = range_input_producer(n, num_epochs, shuffle, seed, capacity, shared_name)
        index = q.dequeue()
        return [gather(t, index) for t in ts]


# ---- batching ----------------------------------------------------------------------------------
def _flatten(tensors: Any) -> tuple[list[Tensor], Any]:
    if isinstance(tensors, dict):
        keys = list(tensors)
        return [convert_to_tensor(tensors[k]) for k in keys], keys
    if isinstance(tensors, (list, tuple)):
        return [convert_to_tensor(t) for t in tensors], None
    return [convert_to_tensor(tensors)], "single"


def _pack(outs: Any, how: Any) -> Any:
    outs = outs if isinstance(outs, list) else [outs]
    if how == "single":
        return outs[0]
    if how is None:
        return outs
    return dict(zip(how, outs, strict=True))


def _shapes(ts: list[Tensor], shapes: Any, enqueue_many: bool, dynamic_pad: bool) -> list:
    if shapes is not None:
        return list(shapes)
    out = []
    for t in ts:
        s = t._shape
        if s is not None and enqueue_many:
            s = s[1:]
        if s is None or (not dynamic_pad and any(d is None for d in s)):
            raise ValueError(
                f"the shape of '{t.name}' ({s}) is not fully defined: pass shapes= to the "
                f"batching function, or dynamic_pad=True for variable-length dimensions")
        out.append(s)
    return out


def _batch(tensors_list: list[Any], batch_size: int, capacity: int, enqueue_many: bool,
           shapes: Any, dynamic_pad: bool, allow_smaller_final_batch: bool,
           shared_name: str | None, name: str, threads_per: int,
           shuffle: dict | None = None) -> Any:
    flat_list = [_flatten(t) for t in tensors_list]
    how = flat_list[0][1]
    first = flat_list[0][0]
    dts = [t.dtype for t in first]
    shps = _shapes(first, shapes, enqueue_many, dynamic_pad)
    with name_scope(name, "batch"):
        if shuffle is not None:
            q: Any = RandomShuffleQueue(capacity, shuffle["min_after_dequeue"], dts, shps,
                                        seed=shuffle["seed"], shared_name=shared_name,
                                        name="random_shuffle_queue")
        elif dynamic_pad:
            q = PaddingFIFOQueue(capacity, dts, shps, shared_name=shared_name,
                                 name="padding_fifo_queue")
        else:
            q = FIFOQueue(capacity, dts, shps, shared_name=shared_name, name="fifo_queue")
        enqs = []
        for flat, _ in flat_list:
            op = q.enqueue_many(flat) if enqueue_many else q.enqueue(flat)
            enqs.extend([op] * threads_per)
        add_queue_runner(QueueRunner(q, enqs))
        out = q.dequeue_up_to(batch_size) if allow_smaller_final_batch else q.dequeue_many(
            batch_size)
        return _pack(out, how)


def batch(tensors: Any, batch_size: int, num_threads: int = 1, capacity: int = 32,
          enqueue_many: bool = False, shapes: Any = None, dynamic_pad: bool = False,
          allow_smaller_final_batch: bool = False, shared_name: str | None = None,
          name: str | None = None) -> Any:
    """Batches of `batch_size` of `tensors` (a tensor, list or dict), fed by `num_threads`."""
    return _batch([tensors], batch_size, capacity, enqueue_many, shapes, dynamic_pad,
                  allow_smaller_final_batch, shared_name, name, num_threads)


def batch_join(tensors_list: Sequence[Any], batch_size: int, capacity: int = 32,
               enqueue_many: bool = False, shapes: Any = None, dynamic_pad: bool = False,
               allow_smaller_final_batch: bool = False, shared_name: str | None = None,
               name: str | None = None) -> Any:
    """Like `batch`, with one enqueue thread per member of `tensors_list`."""
    return _batch(list(tensors_list), batch_size, capacity, enqueue_many, shapes, dynamic_pad,
                  allow_smaller_final_batch, shared_name, name, 1)


def shuffle_batch(tensors: Any, batch_size: int, capacity: int, min_after_dequeue: int,
                  num_threads: int = 1, seed: int | None = None, enqueue_many: bool = False,
                  shapes: Any = None, allow_smaller_final_batch: bool = False,
                  shared_name: str | None = None, name: str | None = None) -> Any:
    """Batches drawn at random from a RandomShuffleQueue of `capacity` elements."""
    return _batch([tensors], batch_size, capacity, enqueue_many, shapes, False,
                  allow_smaller_final_batch, shared_name, name or "shuffle_batch", num_threads,
                  {"min_after_dequeue": min_after_dequeue, "seed": seed})


def shuffle_batch_join(tensors_list: Sequence[Any], batch_size: int, capacity: int,
                       min_after_dequeue: int, seed: int | None = None,
                       enqueue_many: bool = False, shapes: Any = None,
                       allow_smaller_final_batch: bool = False,
                       shared_name: str | None = None, name: str | None = None) -> Any:
    return _batch(list(tensors_list), batch_size, capacity, enqueue_many, shapes, False,
                  allow_smaller_final_batch, shared_name, name or "shuffle_batch_join", 1,
                  {"min_after_dequeue": min_after_dequeue, "seed": seed})
