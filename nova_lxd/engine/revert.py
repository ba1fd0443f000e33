"""Undo multi-step work when a later step fails (as Incus' revert).

    with Reverter() as revert:
        make_dir(); revert.add(remove_dir)
        ...
        revert.success()

Undo steps run in reverse order only if the block raised before
``success()``; a failing undo step is logged and the next one still runs.
"""

from __future__ import annotations

from collections.abc import Callable

from oslo_log import log as logging

LOG = logging.getLogger(__name__)


class Reverter:
    def __init__(self) -> None:
        self._undo: list[Callable[[], object]] = []
        self._done = False

    def add(self, undo: Callable[[], object]) -> None:
        self._undo.append(undo)

    def success(self) -> None:
        self._done = True

    def __enter__(self) -> Reverter:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None and not self._done:
            for undo in reversed(self._undo):
                try:
                    undo()
                except Exception:  # noqa: BLE001 - keep undoing
                    LOG.exception("Undo step %r failed", undo)
        return False
