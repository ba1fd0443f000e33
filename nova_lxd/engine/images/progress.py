"""Progress of long image work, for logs and for progress bars.

Producers call ``progress(stage, fraction)`` with a fraction in [0, 1];
``LogProgress`` turns that into one log line per 10 % of each stage, so an
operator tailing nova-compute's log sees a conversion move.
"""

from __future__ import annotations

from collections.abc import Callable

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

Progress = Callable[[str, float], None]


def silent(stage: str, fraction: float) -> None:
    """The default: nobody is watching."""


class LogProgress:
    def __init__(self, what: str, step: int = 10) -> None:
        self.what = what
        self.step = step
        self._last: dict[str, int] = {}

    def __call__(self, stage: str, fraction: float) -> None:
        percent = max(0, min(100, int(fraction * 100)))
        bucket = percent - percent % self.step
        if bucket <= self._last.get(stage, -1):
            return
        self._last[stage] = bucket
        LOG.info("%s: %s %d%%", self.what, stage, bucket)


def tee(*callbacks: Progress | None) -> Progress:
    """One callback that feeds several (e.g. a log and a progress bar)."""
    active = [cb for cb in callbacks if cb is not None]

    def report(stage: str, fraction: float) -> None:
        for cb in active:
            cb(stage, fraction)
    return report
