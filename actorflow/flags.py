"""``af.app.flags`` / ``af.flags``: command-line flags the way TF1 programs define them.

    flags = af.app.flags
    flags.DEFINE_integer("epochs", 10, "how many passes over the data")
    FLAGS = flags.FLAGS
    def main(argv): print(FLAGS.epochs)
    af.app.run(main)        # parses --epochs=3 / --epochs 3 from sys.argv, then calls main

State: one module-level `FLAGS` (a `FlagValues`) holding each flag's definition and value.
Parsing follows absl/TF1: ``--name=value``, ``--name value``, ``--flag`` / ``--noflag`` for
booleans, ``--`` ends the flags; arguments that are not defined flags are left for ``main``
(TF1's lenient parse). Reading a flag before `af.app.run` parses ``sys.argv`` once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


class Error(Exception):
    """A flag is defined twice, or a value does not parse."""


class UnrecognizedFlagError(Error, AttributeError):
    pass


class IllegalFlagValueError(Error, ValueError):
    pass


@dataclass
class Flag:
    name: str
    default: Any
    help: str
    parse: Callable[[str], Any]
    is_bool: bool = False
    value: Any = None
    present: bool = False


def _parse_bool(s: str) -> bool:
    low = s.strip().lower()
    if low in ("true", "t", "1", "yes", "y"):
        return True
    if low in ("false", "f", "0", "no", "n"):
        return False
    raise ValueError(f"{s!r} is not a boolean (true/false)")


def _parse_list(s: str) -> list[str]:
    return [p.strip() for p in s.split(",") if p.strip()] if s else []


class FlagValues:
    """The flags defined so far and their values: ``FLAGS.name`` reads, assignment sets."""

    def __init__(self) -> None:
        object.__setattr__(self, "_flags", {})
        object.__setattr__(self, "_parsed", False)

    # -- definition ---------------------------------------------------------------------------
    def _define(self, flag: Flag) -> None:
        flags: dict[str, Flag] = self._flags
        if flag.name in flags:
            raise Error(f"flag --{flag.name} is defined twice; define each flag once (at "
                        f"module level)")
        flag.value = flag.default
        flags[flag.name] = flag

    # -- parsing ------------------------------------------------------------------------------
    def __call__(self, argv: Sequence[str], known_only: bool = True) -> list[str]:
        """Parse `argv` (argv[0] is the program); return argv[0] and the arguments left."""
        return self._parse(argv)

    def _parse(self, argv: Sequence[str]) -> list[str]:
        argv = list(argv)
        rest = argv[:1]
        flags: dict[str, Flag] = self._flags
        i = 1
        while i < len(argv):
            arg = argv[i]
            i += 1
            if arg == "--":
                rest.extend(argv[i:])
                break
            if not arg.startswith("-") or arg == "-":
                rest.append(arg)
                continue
            body = arg.lstrip("-")
            name, eq, text = body.partition("=")
            flag = flags.get(name)
            if flag is None and name.startswith("no") and not eq:
                neg = flags.get(name[2:])
                if neg is not None and neg.is_bool:
                    neg.value, neg.present = False, True
                    continue
            if flag is None:
                rest.append(arg)
                continue
            if not eq:
                if flag.is_bool:
                    flag.value, flag.present = True, True
                    continue
                if i >= len(argv):
                    raise IllegalFlagValueError(f"flag --{name} needs a value: --{name}=VALUE")
                text = argv[i]
                i += 1
            try:
                flag.value = flag.parse(text)
            except (ValueError, TypeError) as e:
                raise IllegalFlagValueError(f"flag --{name}={text}: {e}") from None
            flag.present = True
        object.__setattr__(self, "_parsed", True)
        return rest

    def _parse_flags(self, args: Sequence[str] | None = None) -> list[str]:
        """TF 1.4's private parse, called by some programs: parse sys.argv (or `args`)."""
        return self._parse(sys.argv if args is None else [sys.argv[0], *args])

    def is_parsed(self) -> bool:
        return bool(self._parsed)

    def mark_as_parsed(self) -> None:
        object.__setattr__(self, "_parsed", True)

    def _ensure_parsed(self) -> None:
        if not self._parsed:
            self._parse(sys.argv)

    # -- access -------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        flags: dict[str, Flag] = object.__getattribute__(self, "_flags")
        if name == "__flags":  # TF <= 1.4 programs print FLAGS.__flags (a name -> value dict)
            self._ensure_parsed()
            return {n: f.value for n, f in flags.items()}
        if name not in flags:
            raise UnrecognizedFlagError(
                f"no flag named '{name}' is defined; define it with "
                f"af.app.flags.DEFINE_...('{name}', default, help)")
        self._ensure_parsed()
        return flags[name].value

    def __setattr__(self, name: str, value: Any) -> None:
        flags: dict[str, Flag] = self._flags
        if name not in flags:
            raise UnrecognizedFlagError(f"no flag named '{name}' is defined")
        flags[name].value = value

    def __contains__(self, name: str) -> bool:
        return name in self._flags

    def __iter__(self) -> Any:
        return iter(list(self._flags))

    def __getitem__(self, name: str) -> Flag:
        return self._flags[name]

    def flag_values_dict(self) -> dict[str, Any]:
        self._ensure_parsed()
        return {n: f.value for n, f in self._flags.items()}

    def get_flag_value(self, name: str, default: Any) -> Any:
        return getattr(self, name) if name in self._flags else default

    def reset(self) -> None:
        """Forget every definition (for tests that run several programs in one process)."""
        object.__setattr__(self, "_flags", {})
        object.__setattr__(self, "_parsed", False)


FLAGS = FlagValues()


def _definer(parse: Callable[[str], Any], is_bool: bool = False) -> Callable[..., None]:
    def define(name: str, default: Any, help: str = "",  # noqa: A002
               flag_values: FlagValues = FLAGS, **unused: Any) -> None:
        flag_values._define(Flag(name, default, help, parse, is_bool))
    return define


DEFINE_string = _definer(str)
DEFINE_integer = _definer(int)
DEFINE_float = _definer(float)
DEFINE_boolean = _definer(_parse_bool, is_bool=True)
DEFINE_bool = DEFINE_boolean
DEFINE_list = _definer(_parse_list)


def DEFINE_enum(name: str, default: Any, enum_values: Sequence[str], help: str = "",  # noqa: A002, N802
                flag_values: FlagValues = FLAGS, **unused: Any) -> None:
    def parse(s: str) -> str:
        if s not in enum_values:
            raise ValueError(f"must be one of {', '.join(enum_values)}")
        return s
    flag_values._define(Flag(name, default, help, parse))


def mark_flag_as_required(name: str, flag_values: FlagValues = FLAGS) -> None:
    """Checked when `af.app.run` parses: a required flag must be given."""
    _REQUIRED.append((name, flag_values))


_REQUIRED: list[tuple[str, FlagValues]] = []


def check_required() -> None:
    for name, fv in _REQUIRED:
        if name in fv and not fv[name].present and fv[name].value is None:
            raise IllegalFlagValueError(f"flag --{name} must be given")


__all__ = ["FLAGS", "FlagValues", "Error", "DEFINE_string", "DEFINE_integer", "DEFINE_float",
           "DEFINE_boolean", "DEFINE_bool", "DEFINE_list", "DEFINE_enum",
           "mark_flag_as_required", "UnrecognizedFlagError", "IllegalFlagValueError"]
