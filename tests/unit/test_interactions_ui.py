"""The Slack buttons (interactions_ui) and SLACK_INTERACTIVE in the check's messages: values that carry no
secret and refuse what we never wrote, blocks Slack's own Block Kit models accept, edits that keep the facts and
name who clicked, and the settings of the endpoint."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from backup_monitor.check.group import GROUP_AT, Options, plan
from backup_monitor.check.model import Work
from backup_monitor.config import ConfigError, Settings, Target
from backup_monitor.interactions_ui import (
    ACK_STATUS_BLOCK,
    ACTION_ACK,
    ACTION_DOWNLOAD,
    ACTION_SILENCE,
    ACTION_UNSILENCE,
    SILENCE_STATUS_BLOCK,
    VALUE_MAX,
    ButtonValue,
    acknowledged_message,
    download_actions,
    download_button,
    download_reply,
    incident_actions,
    refusal_reply,
    silenced_message,
    unsilenced_message,
)
from backup_monitor.messages import DIGEST_COMPACT_AFTER, DatabaseInfo, Message, render, render_digest
from backup_monitor.records import Record
from backup_monitor.rules import Kind, Notice, Phase
from backup_monitor.scalingo.models import Backup
from backup_monitor.wiring import resolve_secrets
from tests.fakes.slack import refusal

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
KEY = "osc-fr1/ad-shop"
DB = DatabaseInfo("osc-fr1", "shop-prod", "ad-shop", "shop-prod-1234", "postgresql")
TOKEN_LINK = "https://db-api.osc-fr1.scalingo.com/api/databases/x/backups/y/download?token=SECRET-TOKEN-123"
BASE = {"SCALINGO_API_TOKEN": "tk-us-test", "STATE_PATH": "/tmp/unused.sqlite3"}


def assert_blocks_valid(blocks: list[dict[str, Any]], text: str = "x") -> None:
    """What Slack checks (slack-sdk's models and validators, as tests/fakes/slack.py's `refusal`)."""
    assert refusal({"text": text, "blocks": blocks}) is None, refusal({"text": text, "blocks": blocks})
    for raw in blocks:
        parsed = Block.parse(raw)
        assert parsed is not None
        parsed.validate_json()
        assert parsed.to_dict() == raw


def backup(i: int = 0) -> Backup:
    return Backup(f"bk{i:022x}", NOW - timedelta(hours=2), "done", name=f"2026112707{i:04d}_shop", size=10_000)


def buttons_of(blocks: list[dict[str, Any]]) -> list[tuple[str, ButtonValue]]:
    found = []
    for block in blocks:
        elements = block.get("elements", []) if block["type"] == "actions" else []
        accessory = [block["accessory"]] if "accessory" in block else []
        for element in [*elements, *accessory]:
            if element.get("action_id"):
                found.append((element["action_id"], ButtonValue.decode(element["value"])))
    return found


def slack_returns(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """As a block_actions payload gives the message back: block ids made up, emoji flags added."""
    text = json.dumps(blocks).replace('"type": "plain_text"', '"type": "plain_text", "emoji": true')
    return [{"block_id": f"auto{i}", **b} if "block_id" not in b else b for i, b in enumerate(json.loads(text))]


# -- values ---------------------------------------------------------------------------------------------------------


def test_a_value_is_compact_json_and_reads_back() -> None:
    value = ButtonValue(KEY, incident="stuck:6a1f0000")
    assert value.encode() == '{"k":"osc-fr1/ad-shop","i":"stuck:6a1f0000"}'
    assert ButtonValue.decode(value.encode()) == value
    both = ButtonValue(KEY, incident="failed", silence="9f3a1c2e")
    assert ButtonValue.decode(both.encode()) == both
    assert ButtonValue.decode(ButtonValue(KEY, backup="bk1").encode()).backup == "bk1"


@pytest.mark.parametrize(
    "raw",
    [
        None,
        42,
        "",
        "not json",
        "[1, 2]",
        '"osc-fr1/ad-shop"',
        "{}",
        '{"i":"failed"}',  # no key
        '{"k":"osc-fr1/ad-shop","x":"1"}',  # unknown key
        '{"k":"osc-fr1/ad-shop","i":1}',  # not a string
        '{"k":"osc-fr1/ad-shop","i":null}',
        '{"k":{"nested":"x"}}',
        '{"k":""}',
        '{"k":"a b"}',  # whitespace
        '{"k":"a\\u0000b"}',  # control character
        '{"k":"osc-fr1/ad-shop","b":"https://evil.example/x"}',  # a URL
        '{"k":"osc-fr1/ad-shop","b":"x?token=abc"}',  # a token
        '{"k":"xoxb-123-456"}',
        '{"k":"' + "a" * (VALUE_MAX + 10) + '"}',  # over-long
        '{"k":"' + "a" * 600 + '"}',  # one field too long
        "[" * 5000 + "]" * 5000,  # deep nesting
    ],
)
def test_a_hostile_value_is_refused_with_a_value_error(raw: Any) -> None:
    with pytest.raises(ValueError, match="a button's"):
        ButtonValue.decode(raw)


def test_a_value_that_would_carry_a_url_or_be_too_long_cannot_be_made() -> None:
    with pytest.raises(ValueError, match="a button's"):
        ButtonValue(KEY, backup=TOKEN_LINK)
    with pytest.raises(ValueError, match="a button's"):
        ButtonValue("k" * 500, incident="i" * 500, backup="b" * 500, silence="s" * 500).encode()
    with pytest.raises(ValueError, match="a button's"):
        incident_actions(KEY, "x" * 1000)


# -- blocks ---------------------------------------------------------------------------------------------------------


def test_the_buttons_are_valid_block_kit_with_their_action_ids() -> None:
    incident = incident_actions(KEY, "failed")
    download = download_actions(KEY, backup().id)
    assert_blocks_valid([incident, download])
    assert [a for a, _ in buttons_of([incident])] == [ACTION_ACK, ACTION_SILENCE]
    assert buttons_of([download]) == [(ACTION_DOWNLOAD, ButtonValue(KEY, backup=backup().id))]
    assert [a for a, _ in buttons_of([incident_actions(KEY, "api_outage", silence=False)])] == [ACTION_ACK]


def opened(interactive: bool = True) -> Message:
    notice = Notice(Kind.FAILED, Phase.OPEN, "failed", backup(), last_usable_at=NOW - timedelta(days=1))
    actions = incident_actions(KEY, "failed") if interactive else None
    return render(notice, DB, now=NOW, runbook="https://wiki.example.com/r", actions=actions)


def test_an_acknowledged_message_keeps_its_facts_names_the_clicker_and_keeps_silence() -> None:
    message = opened()
    edited = acknowledged_message(slack_returns(message.blocks), message.text, "U0ALICE", NOW)
    assert edited["replace_original"] is True
    assert edited["text"] == message.text
    assert_blocks_valid(edited["blocks"], edited["text"])
    assert [b["text"]["text"] for b in edited["blocks"][:1]] == [message.blocks[0]["text"]["text"]]  # the facts
    status = next(b for b in edited["blocks"] if b.get("block_id") == ACK_STATUS_BLOCK)
    assert "<@U0ALICE>" in status["elements"][0]["text"]
    assert "<!date^" in status["elements"][0]["text"]
    assert buttons_of(edited["blocks"]) == [(ACTION_SILENCE, ButtonValue(KEY, incident="failed"))]


def test_silence_then_unsilence_swaps_the_buttons_and_keeps_the_acknowledgment() -> None:
    message = opened()
    acked = acknowledged_message(slack_returns(message.blocks), message.text, "U0ALICE", NOW)
    until = NOW + timedelta(hours=24)
    silenced = silenced_message(slack_returns(acked["blocks"]), acked["text"], "W0BOB", until, "9f3a1c2e")
    assert_blocks_valid(silenced["blocks"])
    assert buttons_of(silenced["blocks"]) == [
        (ACTION_UNSILENCE, ButtonValue(KEY, incident="failed", silence="9f3a1c2e"))
    ]
    ids = [b.get("block_id") for b in silenced["blocks"]]
    assert ACK_STATUS_BLOCK in ids
    assert SILENCE_STATUS_BLOCK in ids
    assert "<@W0BOB>" in json.dumps(silenced["blocks"])
    back = unsilenced_message(slack_returns(silenced["blocks"]), silenced["text"], "U0CAROL", NOW + timedelta(hours=1))
    assert_blocks_valid(back["blocks"])
    assert buttons_of(back["blocks"]) == [(ACTION_SILENCE, ButtonValue(KEY, incident="failed"))]
    text = json.dumps(back["blocks"])
    assert "Acknowledged by <@U0ALICE>" in text
    assert "Silence ended by <@U0CAROL>" in text
    assert "Silenced by" not in text
    # Silencing a message nobody acknowledged keeps Acknowledge beside Unsilence.
    fresh = silenced_message(slack_returns(message.blocks), message.text, "U0BOB", until, "abc123")
    assert [a for a, _ in buttons_of(fresh["blocks"])] == [ACTION_ACK, ACTION_UNSILENCE]


HOSTILE_BLOCKS: list[Any] = [
    "not a block",
    None,
    {"type": "image", "image_url": "https://evil.example/x.png", "alt_text": "x"},
    {"type": "section", "text": {"type": "mrkdwn", "text": ""}},
    {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 5000}},
    {"type": "section", "text": "not an object"},
    {"type": "actions", "elements": [{"type": "button", "action_id": "bm_ack", "value": "{not json"}]},
    {
        "type": "actions",
        "elements": [{"type": "button", "text": {"type": "plain_text", "text": "x"}, "url": "javascript:1"}],
    },
    {"type": "context", "elements": "nope"},
    {"type": "rich_text", "elements": []},
]


@pytest.mark.parametrize("blocks", [HOSTILE_BLOCKS, "not a list", None, [], [{}] * 80])
def test_an_edit_of_any_message_is_valid_and_never_keeps_unknown_blocks(blocks: Any) -> None:
    for edited in (
        acknowledged_message(blocks, "", "U0ALICE", NOW),
        silenced_message(blocks, None, "U0ALICE", NOW, "abc"),  # type: ignore[arg-type]
        unsilenced_message(blocks, "t" * 50_000, "<!channel>", NOW),
    ):
        assert_blocks_valid(edited["blocks"], edited["text"])
        dumped = json.dumps(edited)
        assert "evil.example" not in dumped
        assert "javascript:" not in dumped
        assert "rich_text" not in dumped
        assert "<!channel>" not in dumped  # who clicked is a user id, or escaped text


def test_the_download_reply_is_ephemeral_and_a_refusal_too() -> None:
    reply = download_reply(TOKEN_LINK, "2026_shop*`<!here>`", "expires in about an hour")
    assert reply["response_type"] == "ephemeral"
    assert reply["replace_original"] is False
    assert_blocks_valid(reply["blocks"], reply["text"])
    assert reply["blocks"][0]["accessory"]["url"] == TOKEN_LINK
    assert "<!here>" not in json.dumps(reply)  # the backup's name is data
    long_link = "https://db-api.example/x?token=" + "t" * 4000
    too_long = download_reply(long_link, "b", None)
    assert_blocks_valid(too_long["blocks"], too_long["text"])
    assert "t" * 100 not in json.dumps(too_long)
    refused = refusal_reply("Only <@U0ALICE> may download backups.")
    assert refused["response_type"] == "ephemeral"
    assert refused["replace_original"] is False
    assert_blocks_valid(refused["blocks"], refused["text"])
    assert_blocks_valid(refusal_reply("x" * 10_000)["blocks"])


# -- the check's messages -------------------------------------------------------------------------------------------


def work_of(notices: list[Notice], key: str = KEY, **kw: Any) -> Work:
    from backup_monitor.rules import Evaluation

    record = Record(key)
    target = Target("osc-fr1", "shop-prod", key.split("/")[1])
    return Work(target, record, DB, evaluation=Evaluation(tuple(notices), record, NOW), **kw)


def options(**kw: Any) -> Options:
    return Options(now=NOW, interactive=True, download_buttons=True, **kw)


def test_incidents_carry_their_keys_and_successes_a_download_button_but_no_link() -> None:
    stuck = Notice(Kind.STUCK, Phase.OPEN, "stuck:bk1", backup(1))
    ok = Notice(Kind.SUCCEEDED, Phase.NOTICE, None, backup(2))
    work = work_of([stuck, ok], links={backup(2).id: TOKEN_LINK})
    for mode in ("each", "digest"):
        out = plan([work], options(success_notices=mode))
        messages = [o.message for o in out if o.message is not None]
        for message in messages:
            assert_blocks_valid(message.blocks, message.text)
            assert "token=" not in json.dumps(message.payload()) + message.plain
        found = [b for m in messages for b in buttons_of(m.blocks)]
        assert (ACTION_ACK, ButtonValue(KEY, incident="stuck:bk1")) in found
        assert (ACTION_SILENCE, ButtonValue(KEY, incident="stuck:bk1")) in found
        assert (ACTION_DOWNLOAD, ButtonValue(KEY, backup=backup(2).id)) in found
    # Without SLACK_INTERACTIVE: no button at all, the link as before.
    plain = [o.message for o in plan([work], Options(now=NOW, success_notices="each")) if o.message]
    assert all(buttons_of(m.blocks) == [] for m in plain)
    assert any(TOKEN_LINK in json.dumps(m.payload()) for m in plain)


def test_resolutions_and_one_off_notices_have_no_buttons() -> None:
    resolved = Notice(Kind.FAILED, Phase.RESOLVE, "failed", opened_at=NOW - timedelta(days=1))
    notice = Notice(Kind.FAILED, Phase.NOTICE, None, backup(3))
    out = plan([work_of([resolved, notice])], options())
    assert all(o.message is not None and buttons_of(o.message.blocks) == [] for o in out)


def test_a_grouped_message_carries_no_buttons() -> None:
    works = [
        work_of([Notice(Kind.FAILED, Phase.OPEN, "failed", backup(i))], key=f"osc-fr1/ad-{i}") for i in range(GROUP_AT)
    ]
    out = plan(works, options())
    assert len(out) == 1
    assert out[0].shared
    assert out[0].message is not None
    assert buttons_of(out[0].message.blocks) == []


def test_records_not_of_one_database_get_acknowledge_only() -> None:
    outage = work_of([Notice(Kind.API_OUTAGE, Phase.OPEN, "api_outage", detail="503")], key="__outage__/osc-fr1")
    outage.outage_region = "osc-fr1"
    unreadable = work_of([Notice(Kind.CANNOT_CHECK, Phase.OPEN, KEY, detail="corrupt")], key="__unreadable__/osc-fr1")
    unreadable.infos = {KEY: DB}
    for work, incident in ((outage, "api_outage"), (unreadable, KEY)):
        (out,) = plan([work], options())
        assert out.message is not None
        assert_blocks_valid(out.message.blocks, out.message.text)
        assert buttons_of(out.message.blocks) == [(ACTION_ACK, ButtonValue(work.key, incident=incident))]


@pytest.mark.parametrize("count", [1, DIGEST_COMPACT_AFTER, DIGEST_COMPACT_AFTER + 1, 300])
def test_a_digest_with_buttons_of_any_size_fits_slack_and_lists_every_backup_once(count: int) -> None:
    items = [(Notice(Kind.SUCCEEDED, Phase.NOTICE, None, backup(i)), DB, None) for i in range(count)]
    buttons = [download_button(f"osc-fr1/ad-{i}", backup(i).id) for i in range(count)]
    parts = render_digest(items, threaded=True, buttons=buttons)
    listed: list[int] = []
    found: list[ButtonValue] = []
    for part in parts:
        assert_blocks_valid(part.message.blocks, part.message.text)
        assert len(part.message.blocks) <= 50
        listed.extend(part.items)
        found.extend(v for _, v in buttons_of(part.message.blocks))
    assert sorted(listed) == list(range(count))
    assert found == [ButtonValue(f"osc-fr1/ad-{i}", backup=backup(i).id) for i in range(count)]


# -- settings -------------------------------------------------------------------------------------------------------


def test_the_interactive_settings_default_to_off_and_read_their_values() -> None:
    default = Settings.from_env(BASE)
    assert default.slack_interactive is False
    assert default.download_allowed_users == ()
    settings = Settings.from_env(
        {
            **BASE,
            "SLACK_INTERACTIVE": "true",
            "SLACK_SIGNING_SECRET": "8f742231b10e8888abcd99yyyzzz85a5",
            "DOWNLOAD_ALLOWED_USERS": " U0ALICE, W0BOB,S0ONCALL ,U0ALICE",
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_CHANNEL": "C1",
        }
    )
    assert settings.slack_interactive is True
    assert settings.download_allowed_users == ("U0ALICE", "W0BOB", "S0ONCALL")
    assert settings.download_allowed_groups == ("S0ONCALL",)
    assert "8f742231" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DOWNLOAD_ALLOWED_USERS": "alice"}, "DOWNLOAD_ALLOWED_USERS"),
        ({"DOWNLOAD_ALLOWED_USERS": "U0ALICE,<@U0BOB>"}, "DOWNLOAD_ALLOWED_USERS"),
        ({"DOWNLOAD_ALLOWED_USERS": "C0CHANNEL"}, "DOWNLOAD_ALLOWED_USERS"),
        ({"DOWNLOAD_ALLOWED_USERS": "S0ONCALL"}, "DOWNLOAD_ALLOWED_USERS"),  # a group without a bot token
        ({"SLACK_INTERACTIVE": "maybe"}, "SLACK_INTERACTIVE"),
        ({"SLACK_SIGNING_SECRET": "x", "SLACK_SIGNING_SECRET_PARAMETER": "/p"}, "SLACK_SIGNING_SECRET_PARAMETER"),
    ],
)
def test_bad_interactive_settings_are_configuration_errors(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env({**BASE, **env})
    assert error.value.variable == variable


def test_a_group_is_allowed_with_the_bot_token_from_ssm() -> None:
    env = {**BASE, "DOWNLOAD_ALLOWED_USERS": "S0ONCALL", "SLACK_BOT_TOKEN_PARAMETER": "/b", "SLACK_CHANNEL": "C1"}
    assert Settings.from_env(env).download_allowed_groups == ("S0ONCALL",)


class _Parameters:
    """SSM as the secret reader sees it: parameter name -> value."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.asked: list[tuple[str, str]] = []

    def read(self, name: str, variable: str) -> str:
        self.asked.append((name, variable))
        return self.values[name]


def test_the_signing_secret_is_read_from_its_parameter() -> None:
    settings = Settings.from_env({**BASE, "SLACK_SIGNING_SECRET_PARAMETER": "/backup-monitor/slack-signing-secret"})
    reader = _Parameters({"/backup-monitor/slack-signing-secret": "s3cr3t-signing"})
    resolved = resolve_secrets(settings, reader)  # type: ignore[arg-type]
    assert resolved.slack_signing_secret == "s3cr3t-signing"
    assert reader.asked == [("/backup-monitor/slack-signing-secret", "SLACK_SIGNING_SECRET_PARAMETER")]
