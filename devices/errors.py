"""One error hierarchy with canonical codes, the same type on every side of the wire.

Every error carries a code (its class), a message, and where known the node and device it
happened on. `error_from_code` rebuilds the right class from a code received off the wire.

    >>> raise NotFoundError("no tensor named 'x:0'; did you mean 'y:0'?", node="fetch")
"""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    """Canonical error codes (the numbers TensorFlow and gRPC use)."""

    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14


class OpError(Exception):
    """The base of every runtime error. `node` and `device` name where it happened."""

    code: Code = Code.UNKNOWN

    def __init__(self, message: str, *, node: str | None = None, device: str | None = None):
        self.message = message
        self.node = node
        self.device = device
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.node:
            where.append(f"node '{self.node}'")
        if self.device:
            where.append(f"device {self.device}")
        prefix = f"{self.code.name.title().replace('_', '')}"
        return f"{prefix}: {self.message}" + (f" [at {', '.join(where)}]" if where else "")

    def with_location(self, node: str | None = None, device: str | None = None) -> OpError:
        """Return this error with node/device filled in where they were missing."""
        if (node and not self.node) or (device and not self.device):
            err = type(self)(self.message, node=self.node or node, device=self.device or device)
            err.__cause__ = self.__cause__ or self
            return err
        return self


class CancelledError(OpError):
    code = Code.CANCELLED


class UnknownError(OpError):
    code = Code.UNKNOWN


class InvalidArgumentError(OpError, ValueError):
    code = Code.INVALID_ARGUMENT


class DeadlineExceededError(OpError, TimeoutError):
    code = Code.DEADLINE_EXCEEDED


class NotFoundError(OpError, KeyError):
    code = Code.NOT_FOUND

    def __str__(self) -> str:  # KeyError would quote the message
        return self._render()


class AlreadyExistsError(OpError):
    code = Code.ALREADY_EXISTS


class ResourceExhaustedError(OpError, MemoryError):
    code = Code.RESOURCE_EXHAUSTED


class FailedPreconditionError(OpError):
    code = Code.FAILED_PRECONDITION


class AbortedError(OpError):
    code = Code.ABORTED


class OutOfRangeError(OpError, IndexError):
    """An iteration went past the end: a closed queue ran dry, a Dataset iterator ended."""

    code = Code.OUT_OF_RANGE


class UnimplementedError(OpError, NotImplementedError):
    code = Code.UNIMPLEMENTED


class InternalError(OpError):
    """Our own bug. The message ends with a request to report it."""

    code = Code.INTERNAL

    def __init__(self, message: str, *, node: str | None = None, device: str | None = None):
        if "please report" not in message:
            message += (" (this is a bug in actorflow: please report it with the graph that "
                        "caused it)")
        super().__init__(message, node=node, device=device)


class UnavailableError(OpError, ConnectionError):
    code = Code.UNAVAILABLE


_BY_CODE: dict[Code, type[OpError]] = {
    cls.code: cls
    for cls in (
        CancelledError, UnknownError, InvalidArgumentError, DeadlineExceededError,
        NotFoundError, AlreadyExistsError, ResourceExhaustedError, FailedPreconditionError,
        AbortedError, OutOfRangeError, UnimplementedError, InternalError, UnavailableError,
    )
}


def error_from_code(code: int, message: str, *, node: str | None = None,
                    device: str | None = None) -> OpError:
    """Rebuild an error of the right class from its canonical code (for errors off the wire)."""
    try:
        cls = _BY_CODE[Code(code)]
    except ValueError:
        cls = UnknownError
    return cls(message, node=node, device=device)
