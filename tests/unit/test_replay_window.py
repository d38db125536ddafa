"""Replay protection of the Slack endpoint on a fake clock: a signature is remembered for as long as Slack's
timestamp keeps it valid, including a timestamp ahead of this host's clock (slack-sdk accepts up to 5 minutes
either way)."""

from __future__ import annotations

from pathlib import Path

from backup_monitor.config import Settings
from backup_monitor.interactions import Endpoint
from backup_monitor.state.sqlite import SqliteStateStore
from tests.support.interactions import SECRET, click_body, signed_headers

NOWHERE = "http://127.0.0.1:9/reply"  # refused at once: the answer to Slack is not what is tested here


def endpoint(tmp_path: Path, clock: list[float]) -> Endpoint:
    settings = Settings.from_env({"SCALINGO_API_TOKEN": "tk-us-test", "STATE_PATH": str(tmp_path / "s.db")})
    store = SqliteStateStore(str(tmp_path / "s.db"))
    return Endpoint(settings, store, lambda force: SECRET, clock=lambda: clock[0])


def test_a_request_signed_ahead_of_this_clock_is_refused_when_replayed_while_still_valid(tmp_path: Path) -> None:
    clock = [1_700_000_000.0]
    served = endpoint(tmp_path, clock)
    body = click_body("bm_unknown", '{"k":"osc-fr1/ad-1"}', NOWHERE)
    headers = signed_headers(body, timestamp=int(clock[0]) + 200)  # Slack's clock 200 s ahead of ours
    assert served.handle(headers, body).status == 200
    clock[0] += 310  # the timestamp is 110 s old: still inside Slack's 5 minutes
    assert served.handle(headers, body).status == 401
    clock[0] += 200  # 310 s old: the signature itself is refused
    assert served.handle(headers, body).status == 401


def test_a_request_is_accepted_once_within_its_window(tmp_path: Path) -> None:
    clock = [1_700_000_000.0]
    served = endpoint(tmp_path, clock)
    body = click_body("bm_unknown", '{"k":"osc-fr1/ad-1"}', NOWHERE)
    headers = signed_headers(body, timestamp=int(clock[0]) - 100)
    assert served.handle(headers, body).status == 200
    for step in (1, 150, 48):  # up to 299 s after its timestamp
        clock[0] += step
        assert served.handle(headers, body).status == 401
