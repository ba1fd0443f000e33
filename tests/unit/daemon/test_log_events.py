"""The logging-events handler never blocks, loops or breaks logging."""

from __future__ import annotations

import logging

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


def _logger(hub: FakeHub) -> tuple[logging.Logger, logging.Handler]:
    logger = logging.getLogger("nova_lxd.test.log_events")
    logger.setLevel(logging.DEBUG)
    handler = log_events.EventLogHandler(hub)
    logger.addHandler(handler)
    logging.getLogger("nova_lxd.test.inner").addHandler(handler)
    return logger, handler


def _drop(handler: logging.Handler) -> None:
    for name in ("nova_lxd.test.log_events", "nova_lxd.test.inner"):
        logging.getLogger(name).removeHandler(handler)


def test_records_become_events_once():
    hub = FakeHub()
    logger, handler = _logger(hub)
    try:
        logger.info("hello %s", "world")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        _drop(handler)
    assert [k for k, _ in hub.published] == ["logging", "logging"]
    first, second = hub.published[0][1], hub.published[1][1]
    assert first["message"] == "hello world" and first["level"] == "info"
    assert first["context"]["logger"] == "nova_lxd.test.log_events"
    assert second["level"] == "error"
    assert "ValueError: boom" in second["context"]["exception"]


def test_nothing_without_subscribers_and_errors_swallowed(capsys):
    quiet = FakeHub(wanted=False)
    logger, handler = _logger(quiet)
    try:
        logger.info("nobody listens")
    finally:
        _drop(handler)
    assert quiet.published == []
    broken = FakeHub(fail=True)
    logger, handler = _logger(broken)
    try:
        logger.warning("still logged")
    finally:
        _drop(handler)
    assert "Logging error" not in capsys.readouterr().err


def test_long_messages_are_cut():
    record = logging.LogRecord("x", logging.INFO, __file__, 1,
                               "y" * (log_events.MAX_MESSAGE * 2), None,
                               None)
    meta = log_events.event_metadata(record)
    assert len(meta["message"]) == log_events.MAX_MESSAGE
