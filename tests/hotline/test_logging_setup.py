"""JSON logs as the people on call read them: one object per line, tracebacks as data, no local variables."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import logging, structlog
from hotline.logging_setup import configure_logging
configure_logging("INFO", "json")
def login(password):
    raise ValueError("database unavailable")
try:
    login("hunter2-secret")
except ValueError:
    structlog.get_logger("gateway").exception("login.failed", call_id="c1")
try:
    {}["missing"]
except KeyError:
    logging.getLogger("uvicorn.error").exception("std library logger")
"""


def test_json_logs_carry_tracebacks_without_locals() -> None:
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True)
    lines = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    assert [line["event"] for line in lines] == ["login.failed", "std library logger"]
    ours, theirs = lines
    assert ours["call_id"] == "c1" and ours["level"] == "error"
    [error] = ours["exception"]
    assert (error["exc_type"], error["exc_value"]) == ("ValueError", "database unavailable")
    assert [frame["name"] for frame in error["frames"]] == ["<module>", "login"]
    assert theirs["exception"][0]["exc_type"] == "KeyError"
    assert "traceback object" not in run.stderr and "hunter2" not in run.stderr


WEBSOCKET_ACCEPTED = """
import logging
from hotline.logging_setup import configure_logging
configure_logging("INFO", "json")
logging.getLogger("uvicorn.error").info(
    '%s - "WebSocket %s" [accepted]', "127.0.0.1:41098", "/api/events?token=o5ASoS-0nJBYvZfd&after=22&epoch=e1"
)
"""


def test_a_desks_websocket_is_logged_without_the_operators_token() -> None:
    run = subprocess.run(
        [sys.executable, "-c", WEBSOCKET_ACCEPTED], capture_output=True, text=True, timeout=60, check=True
    )
    [line] = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    assert line["event"] == '127.0.0.1:41098 - "WebSocket /api/events?token=[redacted]&after=22&epoch=e1" [accepted]'
    assert "o5ASoS" not in run.stderr
