"""TF1's queue-based file input: `string_input_producer` (a queue of file names, shuffled
and repeated per epoch by a queue runner), `match_filenames_once`, and `WholeFileReader`,
whose `read(queue)` takes the next name from the queue and gives (name, the file's bytes):

    names = af.train.string_input_producer(af.train.match_filenames_once("imgs/*.png"))
    key, value = af.WholeFileReader().read(names)
    image = af.image.decode_png(value, channels=1)

Built on the queues and queue runners of `af.train` and the ReadFile op; the end of the
epochs is the queue's OutOfRangeError, as in TF.
"""

from __future__ import annotations

import glob as _glob
from typing import Any

from actorflow.graph import GraphKeys, Tensor, name_scope
from actorflow.op_def import convert_to_tensor
from actorflow.ops.image_io_ops import read_file
from devices import dtypes
from devices.errors import InvalidArgumentError

__all__ = ["string_input_producer", "match_filenames_once", "WholeFileReader"]


def string_input_producer(string_tensor: Any, num_epochs: int | None = None,
                          shuffle: bool = True, seed: int | None = None, capacity: int = 32,
                          shared_name: str | None = None, name: str | None = None,
                          cancel_op: Any = None) -> Any:
    """A FIFOQueue of the strings of the 1-D `string_tensor`, `num_epochs` times (None:
    forever), reshuffled each epoch if `shuffle`; a queue runner fills it."""
    from actorflow.train.input import input_producer
    t = string_tensor if isinstance(string_tensor, Tensor) else convert_to_tensor(
        list(string_tensor), dtype=dtypes.string)
    if t.dtype is not dtypes.string:
        raise InvalidArgumentError(f"string_input_producer takes a string tensor, got "
                                   f"{t.dtype.name}")
    return input_producer(t, element_shape=[], num_epochs=num_epochs, shuffle=shuffle,
                          seed=seed, capacity=capacity, shared_name=shared_name,
                          name=name or "input_producer", cancel_op=cancel_op)


def match_filenames_once(pattern: Any, name: str | None = None) -> Tensor:
    """The sorted file names matching the glob `pattern` (a string or list of them), as a
    string tensor. The files are listed when the graph is built (TF lists them when the
    local variables are initialised)."""
    patterns = [pattern] if isinstance(pattern, str | bytes) else list(pattern)
    names = sorted({f for p in patterns
                    for f in _glob.glob(p.decode() if isinstance(p, bytes) else p)})
    if not names:
        raise InvalidArgumentError(f"match_filenames_once: no file matches {patterns}")
    from actorflow.variables import Variable
    with name_scope(name, "matching_filenames"):
        v = Variable(convert_to_tensor(names, dtype=dtypes.string), trainable=False,
                     collections=[GraphKeys.LOCAL_VARIABLES], name="matching_filenames")
    return v.read_value() if hasattr(v, "read_value") else v


class WholeFileReader:
    """Reads a whole file per `read`: (its name, its contents)."""

    def __init__(self, name: str | None = None):
        self._name = name or "WholeFileReader"
        self._produced = 0

    def read(self, queue: Any, name: str | None = None) -> tuple[Tensor, Tensor]:
        with name_scope(name, self._name):
            key = queue.dequeue()
            if isinstance(key, list | tuple):
                key = key[0]
            return key, read_file(key)
