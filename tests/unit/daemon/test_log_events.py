"""The logging-events handler never blocks, loops or breaks logging."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from nova_lxd.daemon import log_events


class FakeHub:
    def __init__(self, wanted: bool = True, fail: bool = False) -> None:
        self.wanted, self.fail = wanted, fail
        self.published: list[tuple[str, dict]] = []

    def wants(self, kind: str) -> bool:
        return self.wanted

    def publish(self, kind: str, metadata: dict) -> None:
        # A publisher that logs: the handler must not feed it again.
        logging.getLogger("nova_lxd.test.inner").warning("while publishing")
        if self.fail:
            raise RuntimeError("event loop is closed")
        self.published.append((kind, metadata))


@contextlib.contextmanager
def _logging_to(hub: FakeHub) -> Iterator[logging.Logger]:
    """A test logger (and the logger the hub logs to) feeding ``hub``."""
    handler = log_events.EventLogHandler(hub)
    names = ("nova_lxd.test.log_events", "nova_lxd.test.inner")
    for name in names:
        logging.getLogger(name).addHandler(handler)
    logger = logging.getLogger(names[0])
    logger.setLevel(logging.DEBUG)
    try:
        yield logger
    finally:
        for name in names:
            logging.getLogger(name).removeHandler(handler)


def test_records_become_events_once():
    hub = FakeHub()
    with _logging_to(hub) as logger:
        logger.info("hello %s", "world")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    assert [k for k, _ in hub.published] == ["logging", "logging"]
    first, second = hub.published[0][1], hub.published[1][1]
    assert first["message"] == "hello world" and first["level"] == "info"
    assert first["context"]["logger"] == "nova_lxd.test.log_events"
    assert second["level"] == "error"
    assert "ValueError: boom" in second["context"]["exception"]


def test_nothing_without_subscribers_and_errors_swallowed(capsys):
    quiet = FakeHub(wanted=False)
    with _logging_to(quiet) as logger:
        logger.info("nobody listens")
    assert quiet.published == []
    with _logging_to(FakeHub(fail=True)) as logger:
        logger.warning("still logged")
    assert "Logging error" not in capsys.readouterr().err


def test_long_messages_are_cut():
    record = logging.LogRecord("x", logging.INFO, __file__, 1,
                               "y" * (log_events.MAX_MESSAGE * 2), None,
                               None)
    meta = log_events.event_metadata(record)
    assert len(meta["message"]) == log_events.MAX_MESSAGE
