"""Device names: a frozen `DeviceSpec`, parsed once from a string and compared as an object.

A device is named by five fields, each of which may be unspecified (``None``):

    /job:<name>/replica:<int>/task:<int>/device:<KIND>:<int>

A *fully specified* spec names exactly one device of a cluster; a *partial* spec is a constraint
("any GPU", "anything in /job:ps") that matches a set of devices. The kind is normalised to
upper case (``"cpu"`` -> ``"CPU"``). Accepted spellings:

    ""                                        nothing specified
    "/job:worker/replica:0/task:1/device:GPU:0"   the canonical full form
    "/job:ps", "/job:ps/task:3"               any subset of the components, in any order
    "/cpu:0", "/gpu:1", "/GPU:*"              the legacy short device form
    "/device:GPU:*", "/device:CPU"            any index of a kind
    "CPU:0", "gpu"                            a bare device, without the leading slash

Parsing is cached (`parse` is hot: the placer and partitioner see the same few strings for
every node), and the cache returns the same frozen object, so callers may keep specs in dicts.

State: none beyond the parse cache (an `lru_cache` keyed by the string).

    >>> spec = DeviceSpec.parse("/job:ps/gpu:1")
    >>> spec.to_string()
    '/job:ps/device:GPU:1'
    >>> spec.merge(DeviceSpec.parse("/task:0")).to_string()
    '/job:ps/task:0/device:GPU:1'
    >>> spec.matches(DeviceSpec.parse("/job:ps/replica:0/task:0/device:GPU:1"))
    True

Field semantics follow TensorFlow's `DeviceSpec`: `merge` (TF's ``merge_from``) lets the other
spec's specified fields win; `is_compatible_with` is true when no specified field disagrees;
`matches` is true when every field this spec specifies equals the concrete device's field.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

from devices.errors import InvalidArgumentError

# Kinds accepted in the legacy "/cpu:0" form. The "/device:KIND:N" form accepts any identifier.
LEGACY_KINDS: frozenset[str] = frozenset({"CPU", "GPU", "TPU"})

_FORMAT_HINT = ("expected /job:NAME/replica:N/task:N/device:KIND:N with any part left out "
                "(e.g. '/job:localhost/replica:0/task:0/device:CPU:0', '/job:ps', '/gpu:1', "
                "'/device:GPU:*')")


@dataclass(frozen=True)
class DeviceSpec:
    """A possibly partial device name. ``None`` in a field means "unspecified" (or ``*``).

    Invariants (checked on construction): `job` is a non-empty name without ``/`` or ``:``;
    `replica`, `task` and `device_index` are non-negative ints; `device_type` is upper case.
    """

    job: str | None = None
    replica: int | None = None
    task: int | None = None
    device_type: str | None = None
    device_index: int | None = None

    def __post_init__(self) -> None:
        if self.job is not None and (not self.job or "/" in self.job or ":" in self.job):
            raise InvalidArgumentError(f"invalid job name {self.job!r} in a device spec; "
                                       "use a non-empty name without '/' or ':'")
        for name in ("replica", "task", "device_index"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise InvalidArgumentError(
                    f"invalid {name} {value!r} in a device spec; use a non-negative int or None")
        if self.device_type is not None:
            kind = self.device_type.upper()
            if not _is_identifier(kind):
                raise InvalidArgumentError(
                    f"invalid device kind {self.device_type!r} in a device spec; "
                    "use a name like CPU or GPU")
            if kind != self.device_type:
                object.__setattr__(self, "device_type", kind)

    # -- construction -------------------------------------------------------------------

    @staticmethod
    def parse(spec: str) -> DeviceSpec:
        """Parse a device string (see the module docstring); InvalidArgument names the bad part."""
        if not isinstance(spec, str):
            raise InvalidArgumentError(
                f"a device spec must be a string or a DeviceSpec, not {type(spec).__name__}")
        return _parse_cached(spec)

    @staticmethod
    def from_any(spec: DeviceSpec | str | None) -> DeviceSpec:
        """A DeviceSpec from a DeviceSpec, a string, or None (nothing specified)."""
        if isinstance(spec, DeviceSpec):
            return spec
        if spec is None:
            return _EMPTY
        return DeviceSpec.parse(spec)

    # -- rendering ------------------------------------------------------------------------

    @cached_property
    def _string(self) -> str:
        parts = []
        if self.job is not None:
            parts.append(f"/job:{self.job}")
        if self.replica is not None:
            parts.append(f"/replica:{self.replica}")
        if self.task is not None:
            parts.append(f"/task:{self.task}")
        if self.device_type is not None or self.device_index is not None:
            kind = self.device_type if self.device_type is not None else "*"
            index = self.device_index if self.device_index is not None else "*"
            parts.append(f"/device:{kind}:{index}")
        return "".join(parts)

    def to_string(self) -> str:
        """The canonical form: ``/job:J/replica:R/task:T/device:KIND:N``, unspecified parts
        left out (an unspecified index of a specified kind renders as ``*``)."""
        return self._string

    def __str__(self) -> str:
        return self._string

    # -- algebra --------------------------------------------------------------------------

    @property
    def is_fully_specified(self) -> bool:
        return (self.job is not None and self.replica is not None and self.task is not None
                and self.device_type is not None and self.device_index is not None)

    def merge(self, other: DeviceSpec | str | None) -> DeviceSpec:
        """A new spec: this one with every field that `other` specifies overridden by it."""
        o = DeviceSpec.from_any(other)
        return DeviceSpec(
            o.job if o.job is not None else self.job,
            o.replica if o.replica is not None else self.replica,
            o.task if o.task is not None else self.task,
            o.device_type if o.device_type is not None else self.device_type,
            o.device_index if o.device_index is not None else self.device_index,
        )

    make_merged_spec = merge  # TensorFlow's name for the same operation

    def is_compatible_with(self, other: DeviceSpec | str) -> bool:
        """True when no field is specified in both specs with different values."""
        o = DeviceSpec.from_any(other)
        return all(a is None or b is None or a == b for a, b in zip(_astuple(self), _astuple(o),
                                                                     strict=True))

    def matches(self, concrete: DeviceSpec | str) -> bool:
        """True when every field this spec specifies equals `concrete`'s (a device name)."""
        o = DeviceSpec.from_any(concrete)
        return all(a is None or a == b for a, b in zip(_astuple(self), _astuple(o), strict=True))

    def task_spec(self) -> DeviceSpec:
        """This spec with the device kind and index dropped: the task it names."""
        return DeviceSpec(self.job, self.replica, self.task)

    def same_task(self, other: DeviceSpec) -> bool:
        """True when both name the same (job, replica, task): one process, cheap transfers."""
        return (self.job == other.job and self.replica == other.replica
                and self.task == other.task)


_EMPTY = DeviceSpec()


def _astuple(spec: DeviceSpec) -> tuple:
    return (spec.job, spec.replica, spec.task, spec.device_type, spec.device_index)


def _is_identifier(s: str) -> bool:
    return bool(s) and (s[0].isalpha() or s[0] == "_") and s.replace("_", "").isalnum()


def canonical_device(spec: DeviceSpec | str) -> str:
    """The canonical string of a device name (any accepted spelling)."""
    return DeviceSpec.from_any(spec).to_string()


@lru_cache(maxsize=4096)
def _parse_cached(spec: str) -> DeviceSpec:
    fields_: dict[str, object] = {}

    def bad(part: str, why: str) -> InvalidArgumentError:
        return InvalidArgumentError(
            f"invalid device spec {spec!r}: in {part!r}, {why}; {_FORMAT_HINT}")

    def put(name: str, value: object, part: str) -> None:
        if name in fields_ and fields_[name] != value:
            raise bad(part, f"{name} given twice ({fields_[name]!r} and {value!r})")
        fields_[name] = value

    def index(text: str, what: str, part: str) -> int | None:
        if text == "*":
            return None
        if not text.isdigit():
            raise bad(part, f"{what} {text!r} is not a non-negative integer or '*'")
        return int(text)

    def device(kind: str, idx: str | None, part: str) -> None:
        if kind == "*":
            kind_norm = None
        elif _is_identifier(kind):
            kind_norm = kind.upper()
        else:
            raise bad(part, f"device kind {kind!r} is not a name like CPU or GPU")
        if kind_norm is not None:
            put("device_type", kind_norm, part)
        if idx is not None:
            value = index(idx, "device index", part)
            if value is not None:
                put("device_index", value, part)

    text = spec.strip()
    if not text:
        return _EMPTY
    bare = not text.startswith("/")
    parts = text.split("/")
    if not bare:
        parts = parts[1:]
    if bare and len(parts) != 1:
        raise bad(text, "a spec with several components must start with '/'")
    for part in parts:
        if not part:
            raise bad(text, "empty component (a doubled or trailing '/')")
        pieces = part.split(":")
        head = pieces[0].lower()
        if head == "job" and len(pieces) == 2:
            if not pieces[1]:
                raise bad(part, "empty job name")
            if pieces[1] != "*":
                put("job", pieces[1], part)
        elif head in ("replica", "task") and len(pieces) == 2:
            value = index(pieces[1], head, part)
            if value is not None:
                put(head, value, part)
        elif head == "device" and len(pieces) in (2, 3):
            device(pieces[1], pieces[2] if len(pieces) == 3 else None, part)
        elif pieces[0].upper() in LEGACY_KINDS and len(pieces) in (1, 2):
            device(pieces[0], pieces[1] if len(pieces) == 2 else None, part)
        elif pieces[0].upper() in LEGACY_KINDS:
            raise bad(part, f"'{pieces[0]}' takes at most one index ({pieces[0]}:N)")
        elif head in ("job", "replica", "task", "device"):
            raise bad(part, f"'{head}' takes exactly one value ({head}:VALUE)"
                      if head != "device" else "'device' takes KIND or KIND:N")
        else:
            raise bad(part, f"unknown component '{pieces[0]}'")
    return DeviceSpec(**fields_)  # type: ignore[arg-type]
