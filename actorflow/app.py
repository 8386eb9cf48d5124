"""``af.app``: TF1's program entry point. `run` parses the flags, calls ``main(argv)`` and
exits with its result (``sys.exit``), as ``tf.app.run`` does.

    def main(_):
        ...
    if __name__ == "__main__":
        af.app.run()          # main is looked up in __main__ when not given
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from actorflow import flags

__all__ = ["run", "flags"]


def run(main: Callable[[list[str]], Any] | None = None,
        argv: Sequence[str] | None = None) -> NoReturn:
    """Parse flags from `argv` (default ``sys.argv``), call ``main(remaining_argv)``, and
    ``sys.exit`` with what it returns."""
    args = list(sys.argv if argv is None else argv)
    rest = flags.FLAGS._parse(args)
    flags.check_required()
    if main is None:
        main = getattr(sys.modules["__main__"], "main", None)
        if main is None:
            raise flags.Error("af.app.run() found no main(argv) function in __main__; pass "
                              "it: af.app.run(main)")
    sys.exit(main(rest))
