"""Every message reaches Slack: end to end through run_check, the fake Scalingo and a fake Slack that refuses what
Slack refuses (webhook and Web API, through slack-sdk's real clients)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from backup_monitor.config import Settings
from backup_monitor.demo import seed
from backup_monitor.monitor import Clients, run_check
from backup_monitor.notifiers import BotNotifier, Notifier, WebhookNotifier
from backup_monitor.scalingo.client import ScalingoClient, build_session
from backup_monitor.state.sqlite import SqliteStateStore
from tests.fakes import FakeScalingo
from tests.fakes.slack import FakeSlack

NOW = datetime.now(UTC).replace(microsecond=0)
HOSTILE = "<!channel> <@U123> `x` *b* _i_ ~s~ \u202eevil\u2069 "
CHANNEL = "C0BACKUPS"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def settings_for(fake: FakeScalingo, **extra: str) -> Settings:
    return Settings.from_env(
        {
            "SCALINGO_API_TOKEN": fake.api_token,
            "SCALINGO_AUTH_URL": fake.url,
            "SCALINGO_API_URL": fake.region_url(),
            "SCALINGO_DB_API_URL": fake.region_url(),
            "SCALINGO_API_RATE_LIMIT": "6000",
            "VERIFY_ARCHIVES_EVERY_DAYS": "0",  # the fake serves no archives here (see test_archive_check.py)
            "DAILY_REPORT_AT": "",  # off: after 08:00 UTC it would add a message (see test_daily_report.py)
            **extra,
        }
    )


def notifier_for(slack: FakeSlack, kind: str) -> Notifier:
    if kind == "bot":
        return BotNotifier(slack.bot_token, CHANNEL, base_url=slack.api_url)
    return WebhookNotifier(slack.webhook_url)


def clients_for(settings: Settings, path: Path, notifier: Notifier) -> Clients:
    scalingo = ScalingoClient.from_settings(settings, session=build_session(retries=1, backoff_factor=0.01))
    return Clients(scalingo, SqliteStateStore(path), notifier)


def everything(slack: FakeSlack) -> str:
    return json.dumps(slack.messages(), ensure_ascii=False)


# -- the fake refuses what Slack refuses ------------------------------------------------------------------------


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


REFUSED = [
    ([section("x")] * 51, "invalid_blocks"),
    ([section("x" * 3001)], "invalid_blocks"),
    ([{"type": "section", "text": {"type": "mrkdwn", "text": ""}}], "invalid_blocks"),
    ([{"type": "no_such_block"}], "invalid_blocks"),
    ([{**section("x"), "colour": "red"}], "invalid_blocks"),
    (
        [{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "x" * 76}}]}],
        "invalid_blocks",
    ),
    ([section("x" * 3000)] * 4 + [section("x" * 1)], "msg_blocks_too_long"),
]


@pytest.mark.parametrize(("blocks", "error"), REFUSED)
def test_the_fake_webhook_answers_400_with_slacks_error(slack: FakeSlack, blocks: list[Any], error: str) -> None:
    response = WebhookClient(slack.webhook_url, timeout=5).send(text="t", blocks=blocks)
    assert (response.status_code, response.body) == (400, error)


@pytest.mark.parametrize(("blocks", "error"), REFUSED)
def test_the_fake_web_api_answers_ok_false_with_slacks_error(slack: FakeSlack, blocks: list[Any], error: str) -> None:
    client = WebClient(token=slack.bot_token, base_url=slack.api_url, timeout=5)
    with pytest.raises(SlackApiError) as refused:
        client.chat_postMessage(channel=CHANNEL, text="t", blocks=blocks)
    assert refused.value.response.status_code == 200
    assert refused.value.response["error"] == error


def test_the_fake_refuses_unknown_destinations_and_edits(slack: FakeSlack) -> None:
    assert WebhookClient(slack.url + "/services/T0/B0/gone", timeout=5).send(text="t").status_code == 404
    client = WebClient(token=slack.bot_token, base_url=slack.api_url, timeout=5)
    with pytest.raises(SlackApiError, match="message_not_found"):
        client.chat_update(channel=CHANNEL, ts="1.000000", text="t")
    with pytest.raises(SlackApiError, match="msg_too_long"):
        client.chat_postMessage(channel=CHANNEL, text="x" * 40_001)
    with pytest.raises(SlackApiError, match="invalid_auth"):
        WebClient(token="xoxb-wrong", base_url=slack.api_url, timeout=5).chat_postMessage(channel=CHANNEL, text="t")


# -- every message reaches Slack --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["webhook", "bot"])
def test_eighty_new_successes_with_long_links_all_reach_slack_on_a_first_check(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path, kind: str
) -> None:
    # GIVEN 40 databases seen for the first time, each with 2 successful backups in the lookback,
    # and download links with 300-character tokens
    fake_scalingo.link_token_chars = 300
    ids = []
    for n in range(40):
        fake_scalingo.add_database(f"app-{n:02d}", f"ad-{n:02d}", scheduled_hours=[(NOW - timedelta(hours=1)).hour])
        for age in (1, 25):
            ids.append(fake_scalingo.add_backup(f"ad-{n:02d}", NOW - timedelta(hours=age), size=10**9)["id"])
    settings = settings_for(fake_scalingo)
    clients = clients_for(settings, tmp_path / "s.sqlite3", notifier_for(slack, kind))
    # WHEN checked
    first = run_check(settings, clients, NOW)
    # THEN every success is listed, with its download button, in messages Slack accepted
    assert first.exit_code == 0, first.line()
    assert slack.refused() == []
    posted = everything(slack)
    assert all(f"/backups/{backup_id}/download?token=" in posted for backup_id in ids)
    count, *parts = slack.messages()
    assert count["text"] == "80 new successful backups"  # a compact count first, then the list in parts
    assert parts
    assert all("new successful backups (part" in m["text"] for m in parts)
    if kind == "bot":  # the parts go in the count's thread: the channel shows one message
        assert all(m.get("thread_ts") for m in parts)
    # AND the next check has nothing to say
    second = run_check(settings, clients, NOW + timedelta(minutes=15))
    assert (second.exit_code, second.sent) == (0, 0)


def absurd_fleet(fake: FakeScalingo) -> None:
    """One database with absurd data (5,000-character hostile names, an unknown status), one with a real failure."""
    absurd = fake.add_database("absurd", "ad-absurd", resource_id=HOSTILE * 200, scheduled_hours=[])
    absurd.database["type_name"] = HOSTILE * 100
    fake.add_backup("ad-absurd", NOW - timedelta(hours=3), "done", name=HOSTILE * 250)
    fake.add_backup("ad-absurd", NOW - timedelta(hours=2), HOSTILE * 100, name="x" * 5000)
    fake.add_backup("ad-absurd", NOW - timedelta(hours=1), "error", name=HOSTILE * 250, size=None)
    fake.add_database("billing", "ad-billing", scheduled_hours=[])
    fake.add_backup("ad-billing", NOW - timedelta(hours=30), "done")
    fake.add_backup("ad-billing", NOW - timedelta(hours=2), "error", size=None)


@pytest.mark.parametrize("kind", ["webhook", "bot"])
def test_a_database_with_absurd_data_does_not_keep_another_failure_from_slack(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path, kind: str
) -> None:
    absurd_fleet(fake_scalingo)
    settings = settings_for(fake_scalingo, SLACK_MENTION="<!here>")
    clients = clients_for(settings, tmp_path / "s.sqlite3", notifier_for(slack, kind))
    first = run_check(settings, clients, NOW)
    texts = [m["text"].removeprefix("<!here> ") for m in slack.messages()]
    assert any(t.startswith("Backup failed: billing/") for t in texts)
    assert any(t.startswith("Backup failed: absurd/") for t in texts)
    assert sum("<!here>" in m["text"] for m in slack.messages()) == 1  # one page for the kind in one check
    assert slack.refused() == []
    assert first.exit_code == 0, first.line()
    posted = everything(slack)
    assert "<!channel>" not in posted
    assert "<@U123>" not in posted
    assert "\u202e" not in posted
    second = run_check(settings, clients, NOW + timedelta(minutes=15))
    assert (second.exit_code, second.sent) == (0, 0)


@pytest.mark.parametrize(
    ("kind", "status", "error"), [("webhook", 400, "invalid_blocks"), ("bot", 200, "invalid_blocks")]
)
def test_a_refused_message_is_resent_as_plain_text_and_the_others_follow(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path, kind: str, status: int, error: str
) -> None:
    seed(fake_scalingo, NOW)
    settings = settings_for(fake_scalingo)
    clients = clients_for(settings, tmp_path / "s.sqlite3", notifier_for(slack, kind))
    slack.fail_next(1, status, error)  # Slack refuses the first message's blocks
    first = run_check(settings, clients, NOW)
    assert first.exit_code == 0, first.line()
    retried = slack.messages()[0]
    assert "blocks" not in retried
    assert len(retried["text"]) <= 3000
    assert retried["text"].split("\n")[0] == slack.refused()[0]["blocks"][0]["text"]["text"].split("\n")[0]
    assert first.undelivered == 0
    assert len(slack.messages()) == first.sent > 1  # every message reached Slack
    assert run_check(settings, clients, NOW + timedelta(minutes=15)).sent == 0


@pytest.mark.parametrize(
    ("kind", "status", "error"), [("webhook", 400, "invalid_payload"), ("bot", 200, "msg_too_long")]
)
def test_a_message_refused_even_as_plain_text_is_given_up_and_the_check_goes_on(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path, kind: str, status: int, error: str
) -> None:
    seed(fake_scalingo, NOW)
    settings = settings_for(fake_scalingo)
    clients = clients_for(settings, tmp_path / "s.sqlite3", notifier_for(slack, kind))
    slack.fail_next(2, status, error)
    first = run_check(settings, clients, NOW)
    assert first.given_up == 1
    assert first.exit_code == 1
    assert "given up: 1" in first.line()
    assert first.undelivered == 0
    assert len(slack.messages()) == first.sent > 1  # the others
    # WHEN checked again THEN the given-up message is not sent again, and all is well
    second = run_check(settings, clients, NOW + timedelta(minutes=15))
    assert (second.exit_code, second.sent) == (0, 0)


@pytest.mark.parametrize(
    ("kind", "status", "error"),
    [("webhook", 410, "channel_is_archived"), ("webhook", 403, "action_prohibited"), ("bot", 200, "not_in_channel")],
)
def test_a_refused_destination_stops_sending_until_it_is_fixed(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path, kind: str, status: int, error: str
) -> None:
    seed(fake_scalingo, NOW)
    settings = settings_for(fake_scalingo)
    clients = clients_for(settings, tmp_path / "s.sqlite3", notifier_for(slack, kind))
    slack.fail_next(1, status, error)
    first = run_check(settings, clients, NOW)
    assert len(slack.calls) == 1  # no retry, no plain-text resend, nothing more this check
    assert first.exit_code == 1
    assert first.error is None  # the check ran
    assert first.delivery_error is not None
    assert error in first.delivery_error
    second = run_check(settings, clients, NOW + timedelta(minutes=15))
    assert second.exit_code == 0
    assert len(slack.messages()) == second.sent > 1


# -- edits of resolved incidents ---------------------------------------------------------------------------------


def bot_with_failed_billing(fake: FakeScalingo, slack: FakeSlack, path: Path) -> tuple[Settings, Clients]:
    """One database, one open incident (a failed backup) announced with a bot; then a backup succeeds."""
    fake.add_database("billing", "ad-billing", scheduled_hours=[])
    fake.add_backup("ad-billing", NOW - timedelta(hours=20), "done")
    fake.add_backup("ad-billing", NOW - timedelta(hours=2), "error", size=None)
    settings = settings_for(fake, SUCCESS_NOTICES="off")
    clients = clients_for(settings, path, notifier_for(slack, "bot"))
    first = run_check(settings, clients, NOW)
    assert first.exit_code == 0
    assert [m["text"][:21] for m in slack.messages()] == ["Backup failed: billin"]
    fake.add_backup("ad-billing", NOW + timedelta(minutes=5), "done", size=400_000_000, method="manual")
    return settings, clients


def test_a_failed_edit_is_retried_alone_at_the_next_check(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    settings, clients = bot_with_failed_billing(fake_scalingo, slack, tmp_path / "s.sqlite3")
    # GIVEN the resolution reply is accepted but the edit of the first message fails
    slack.fail_next(1, 200, "internal_error", only="chat.update")
    resolved = run_check(settings, clients, NOW + timedelta(minutes=15))
    assert resolved.exit_code == 0
    assert slack.messages()[-1]["text"].startswith("Resolved: backup failed")
    assert slack.updates() == []
    record = clients.store.load_many(["osc-fr1/ad-billing"])["osc-fr1/ad-billing"]
    assert len(record.pending_edits) == 1
    # WHEN checked again THEN only the edit is retried: no second resolution reply
    posts = len(slack.messages())
    calls = len(slack.calls)
    again = run_check(settings, clients, NOW + timedelta(minutes=30))
    assert again.exit_code == 0
    assert len(slack.messages()) == posts
    assert len(slack.calls) == calls + 1
    assert slack.updates()[-1]["ts"] == slack.messages()[-1]["thread_ts"]
    record = clients.store.load_many(["osc-fr1/ad-billing"])["osc-fr1/ad-billing"]
    assert record.pending_edits == ()


def test_an_edit_that_keeps_failing_is_given_up_after_a_few_checks(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    settings, clients = bot_with_failed_billing(fake_scalingo, slack, tmp_path / "s.sqlite3")
    slack.fail_next(20, 200, "internal_error", only="chat.update")
    for minutes in range(15, 15 * 8, 15):
        assert run_check(settings, clients, NOW + timedelta(minutes=minutes)).exit_code == 0
    assert sum(c.path.endswith("chat.update") for c in slack.calls) == 4  # the first try and three retries
    assert sum(m["text"].startswith("Resolved: backup failed") for m in slack.messages()) == 1
