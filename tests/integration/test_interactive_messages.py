"""SLACK_INTERACTIVE over real HTTP: a check against the fake Scalingo posts incident messages with Acknowledge
and Silence 24 h, successes with "Get download link", and never a download token or link: not to a bot's
chat.postMessage, not to a webhook, whatever the success mode. The fake Slack's response_url and
usergroups.users.list (what the endpoint uses) answer as Slack does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from backup_monitor.config import Settings
from backup_monitor.demo import seed
from backup_monitor.interactions_ui import (
    ACTION_ACK,
    ACTION_DOWNLOAD,
    ACTION_SILENCE,
    ButtonValue,
    acknowledged_message,
    download_reply,
)
from backup_monitor.monitor import Clients, run_check
from backup_monitor.notifiers import BotNotifier, WebhookNotifier
from backup_monitor.scalingo.client import ScalingoClient, build_session
from backup_monitor.state.sqlite import SqliteStateStore
from tests.fakes import FakeScalingo
from tests.fakes.slack import FakeSlack

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def env_for(fake: FakeScalingo, **extra: str) -> dict[str, str]:
    return {
        "SCALINGO_API_TOKEN": fake.api_token,
        "SCALINGO_AUTH_URL": fake.url,
        "SCALINGO_API_URL": fake.region_url(),
        "SCALINGO_DB_API_URL": fake.region_url(),
        "SCALINGO_API_RATE_LIMIT": "6000",
        "VERIFY_ARCHIVES_EVERY_DAYS": "0",
        "DAILY_REPORT_AT": "",
        "GROUP_WAIT_SECONDS": "0",
        **extra,
    }


def buttons(messages: list[dict[str, Any]]) -> list[tuple[str, ButtonValue]]:
    found = []
    for message in messages:
        blocks = message.get("blocks") or []
        if isinstance(blocks, str):  # a bot's chat.postMessage is form-encoded by slack-sdk: blocks as JSON
            blocks = json.loads(blocks)
        for block in blocks:
            elements = [*block.get("elements", []), *([block["accessory"]] if "accessory" in block else [])]
            found += [(e["action_id"], ButtonValue.decode(e["value"])) for e in elements if e.get("action_id")]
    return found


def every_post(slack: FakeSlack) -> str:
    """Everything the fake Slack received in posts (webhook and chat.postMessage), accepted or not."""
    return json.dumps([c.body for c in slack.calls if c.path.startswith("/services/") or "chat." in c.path])


@pytest.mark.parametrize("mode", ["digest", "each"])
@pytest.mark.parametrize("via", ["bot", "webhook"])
def test_an_interactive_check_posts_buttons_and_never_a_download_token(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path, mode: str, via: str
) -> None:
    seed(fake_scalingo, NOW)
    settings = Settings.from_env(env_for(fake_scalingo, SLACK_INTERACTIVE="true", SUCCESS_NOTICES=mode))
    notifier = (
        BotNotifier(slack.bot_token, "C0BACKUPS", base_url=slack.api_url)
        if via == "bot"
        else WebhookNotifier(slack.webhook_url)
    )
    scalingo = ScalingoClient.from_settings(settings, session=build_session(retries=1, backoff_factor=0.01))
    store = SqliteStateStore(tmp_path / "state.sqlite3")
    summary = run_check(settings, Clients(scalingo, store, notifier), NOW)
    assert summary.exit_code == 0, summary.line()
    messages = slack.messages()
    assert messages
    assert slack.refused() == []
    found = buttons(messages)
    # Every incident announced carries Acknowledge and Silence with its record's key and incident key.
    records = store.load_many(sorted({v.key for _, v in found}))
    acks = [v for a, v in found if a == ACTION_ACK]
    assert acks
    assert {v for a, v in found if a == ACTION_SILENCE} == set(acks)
    for value in acks:
        assert value.incident in records[value.key].incidents
    # Every success carries Get download link, naming a backup the record handled.
    downloads = [v for a, v in found if a == ACTION_DOWNLOAD]
    assert downloads
    for value in downloads:
        assert value.backup in records[value.key].handled
    # No download link was asked of Scalingo, and no token or link reached Slack.
    assert fake_scalingo.count(path_contains="/archive") == 0
    posted = every_post(slack)
    assert "token=" not in posted
    assert "/download" not in posted
    assert "Download backup" not in posted


def test_without_slack_interactive_the_links_are_as_before(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    seed(fake_scalingo, NOW)
    settings = Settings.from_env(env_for(fake_scalingo))
    scalingo = ScalingoClient.from_settings(settings, session=build_session(retries=1, backoff_factor=0.01))
    clients = Clients(scalingo, SqliteStateStore(tmp_path / "s.sqlite3"), WebhookNotifier(slack.webhook_url))
    assert run_check(settings, clients, NOW).exit_code == 0
    assert buttons(slack.messages()) == []
    assert "token=" in every_post(slack)  # the test above would see one if the check still sent it


def post(url: str, body: Any) -> tuple[int, dict[str, Any]]:
    request = Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_the_fake_response_url_records_what_slack_would_accept(slack: FakeSlack) -> None:
    url = slack.response_url("R1")
    edit = acknowledged_message([], "Backup failed", "U0ALICE", NOW)
    assert post(url, edit) == (200, {"ok": True})
    reply = download_reply("https://db-api.example/x?token=abc", "backup-1", None)
    assert post(url, reply) == (200, {"ok": True})
    assert slack.responses("R1") == [edit, reply]
    status, answer = post(url, {"text": "x", "blocks": [{"type": "nope"}]})
    assert (status, answer["error"]) == (400, "invalid_blocks")
    assert post(slack.url + "/response/never-given", edit)[0] == 404
    assert slack.responses("R1") == [edit, reply]
    assert slack.messages() == []  # a response_url is not a post to the channel


def test_the_fake_lists_a_user_groups_members_to_the_bot(slack: FakeSlack) -> None:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web import WebClient

    slack.add_usergroup("S0ONCALL", ["U0ALICE", "U0BOB"])
    client = WebClient(token=slack.bot_token, base_url=slack.api_url)
    assert client.usergroups_users_list(usergroup="S0ONCALL")["users"] == ["U0ALICE", "U0BOB"]
    with pytest.raises(SlackApiError) as unknown:
        client.usergroups_users_list(usergroup="S0OTHER")
    assert unknown.value.response["error"] == "no_such_subteam"
    with pytest.raises(SlackApiError) as bad:
        WebClient(token="xoxb-wrong", base_url=slack.api_url).usergroups_users_list(usergroup="S0ONCALL")
    assert bad.value.response["error"] == "invalid_auth"
