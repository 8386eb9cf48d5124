"""``af.InteractiveSession``: a Session that makes itself the default when it is created,
for shells and notebooks (``t.eval()`` and ``op.run()`` work without a ``with`` block).

    sess = af.InteractiveSession()
    af.global_variables_initializer().run()
    print(loss.eval({x: data}))
    sess.close()
"""

from __future__ import annotations

from typing import Any

from actorflow import session as _session
from actorflow.config import ConfigProto
from actorflow.graph import Graph


class InteractiveSession(_session.Session):
    """A Session installed as the default session from construction until `close()`."""

    def __init__(self, target: str = "", graph: Graph | None = None,
                 config: ConfigProto | None = None):
        super().__init__(target, graph, config)
        self._ensure_thread()
        self._previous: Any = _session._default_session.get()
        _session._default_session.set(self)

    def close(self) -> None:
        if _session._default_session.get() is self:
            _session._default_session.set(self._previous)
        super().close()
