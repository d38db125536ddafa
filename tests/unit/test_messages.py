"""Every renderer's output within Slack's limits (slack-sdk's own Block Kit validators), Scalingo text as data."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from backup_monitor.messages import (
    DIGEST_COMPACT_AFTER,
    MESSAGE_BLOCK_TEXT_BUDGET,
    PLAIN_TEXT_MAX,
    SECTION_TEXT_MAX,
    TITLES,
    DatabaseInfo,
    Message,
    block_text_len,
    console_text,
    edit_blocks,
    mask_links,
    plain_fallback,
    render,
    render_digest,
    render_success,
    safe,
    slack_len,
    title,
)
from backup_monitor.records import ThreadRef
from backup_monitor.rules import Kind, Notice, Phase
from backup_monitor.scalingo.models import Backup
from tests.fakes.slack import refusal

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
THREAD = ThreadRef("C0BACKUPS", "1700000001.000000")
HOSTILE = "<!channel> <@U123> `tick` *bold* _it_ ~del~ \u202eevil\u2066 & <https://x.example|click>"
BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]


def link(token_chars: int, i: int = 0) -> str:
    return (
        f"https://db-api.osc-fr1.scalingo.com/api/databases/{'a' * 24}/backups/{i:024x}/download"
        f"?token={'t' * token_chars}"
    )


def database(name: str = "shop-prod", resource: str = "shop-prod-1234") -> DatabaseInfo:
    return DatabaseInfo("osc-fr1", name, "ad-shop", resource, "postgresql")


def backup(i: int = 0, name: str = "", status: str = "done") -> Backup:
    return Backup(f"bk{i:022x}", NOW - timedelta(hours=2, minutes=i), status, name=name or f"2026112707{i:04d}_shop")


def assert_valid(message: Message) -> None:
    """What Slack checks: Block Kit schemas (slack-sdk's models), 50 blocks, ~12,000 of block text, 40,000 of text."""
    payload = message.payload()
    assert refusal(payload) is None, refusal(payload)
    for raw in message.blocks:
        parsed = Block.parse(raw)
        assert parsed is not None
        parsed.validate_json()
        assert parsed.to_dict() == raw  # validates nested objects; nothing we send is unknown to Slack's models
        if raw["type"] == "section":
            assert slack_len(raw["text"]["text"]) <= SECTION_TEXT_MAX
    assert len(message.blocks) <= 50
    assert block_text_len(message.blocks) <= MESSAGE_BLOCK_TEXT_BUDGET <= 12_000
    assert slack_len(message.text) <= 40_000
    fallback = plain_fallback(message)
    assert fallback.blocks == []
    assert slack_len(fallback.text) <= PLAIN_TEXT_MAX
    assert refusal(fallback.payload()) is None


def all_text(message: Message) -> str:
    return json.dumps(message.payload(), ensure_ascii=False) + message.plain + plain_fallback(message).text


def notices(b: Backup) -> list[Notice]:
    """One notice of every kind and phase the renderers have a title for, plus reminders and resolutions."""
    found = []
    for kind, phase in TITLES:
        found.append(
            Notice(
                kind,
                phase,
                kind.value,
                b if kind not in (Kind.MISSING, Kind.PERIODIC_OFF, Kind.CANNOT_CHECK) else None,
                slot=NOW - timedelta(hours=8) if kind is Kind.MISSING else None,
                detail=HOSTILE * 3 if kind in (Kind.CANNOT_CHECK, Kind.MISSING) else "",
                median_size=900_000_000 if kind is Kind.SUSPICIOUS else None,
                thread=THREAD if phase is Phase.UPDATE else None,
                opened_at=NOW - timedelta(days=1) if phase is Phase.UPDATE else None,
                reasons=(f"The database is {HOSTILE * 20}: ...", HOSTILE) if kind is Kind.MISSING else (),
                quiet=kind is Kind.MISSING,
            )
        )
    for kind in {k for k, p in TITLES if p is Phase.OPEN}:  # the kinds that are incidents
        for phase in (Phase.REMIND, Phase.RESOLVE):
            found.append(
                Notice(kind, phase, kind.value, detail=HOSTILE, opened_at=NOW - timedelta(days=2), thread=THREAD)
            )
    return found


# -- text as data --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [False, True])
def test_scalingo_text_cannot_mention_link_or_format(code: bool) -> None:
    text = safe(HOSTILE, 500, code=code)
    assert "<" not in text
    assert ">" not in text
    assert "&lt;!channel&gt;" in text
    assert "&lt;@U123&gt;" in text
    assert not any(c in text for c in BIDI)
    inner = text[1:-1] if code else text
    assert "`" not in inner
    if not code:
        assert not any(c in text for c in "*_~")  # none of them inside a word here
    else:
        assert text[0] == text[-1] == "`"
        assert "*bold* _it_ ~del~" in text  # inside a code span they are literal: names stay exact


@pytest.mark.parametrize("limit", [1, 2, 5, 40, 299, 300])
def test_long_text_is_cut_with_an_ellipsis_never_inside_an_entity(limit: int) -> None:
    text = safe("&<>" * 200, limit)
    assert slack_len(text) <= limit
    assert text.endswith("…")
    body = text[:-1]
    assert body.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "") == ""


def test_short_text_is_kept_whole() -> None:
    assert safe("billing-prod", 100) == "billing-prod"
    assert safe("20261127010000_billing-4567 a*b c~d", 100) == "20261127010000_billing-4567 a*b c~d"  # inside words
    assert safe("20261127_billing", 100, code=True) == "`20261127_billing`"
    assert safe("", 100, code=True) == "(none)"
    assert safe("emoji 🎉", 100) == "emoji 🎉"


def test_formatting_around_a_hostile_name_stays_intact() -> None:
    db = DatabaseInfo("osc-fr1", "*a_ b~~c`", "ad-x", "res`*_~", "post*gres")
    message = render(Notice(Kind.FAILED, Phase.OPEN, "failed", backup(name="x`y*z")), db)
    section = message.blocks[0]["text"]["text"]
    heading = section.split("\n")[0]
    # outside code spans: exactly the bold pairs we wrote (title, app); one code span (the resource id)
    outside = heading.split("`")[0::2]
    assert heading.count("`") == 2
    assert "".join(outside).count("*") == 5  # title and app in bold, and the one inside "post*gres"
    assert "*\u2217a\u02cd b\u223c\u223cc\u02cb*" in heading  # look-alikes outside code spans
    assert "(post*gres," in heading  # inside a word, Slack formats nothing: kept
    assert "`res\u02cb*_~`" in heading  # inside, only the backtick is replaced
    assert "`x\u02cby*z`" in section


def test_mention_only_comes_from_the_configuration() -> None:
    db = database(name="<!here>", resource="<!channel>")
    opened = render(Notice(Kind.FAILED, Phase.OPEN, "failed", backup(name="<!everyone>")), db, mention="<!here>")
    assert opened.text.startswith("<!here> Backup failed: &lt;!here&gt;/&lt;!channel&gt;")
    assert all_text(opened).count("<!here>") == 4  # the configured mention: text, section, plain, fallback
    assert "<!channel>" not in all_text(opened)
    assert "<!everyone>" not in all_text(opened)
    warning = render(Notice(Kind.STUCK, Phase.OPEN, "stuck:1", backup(status="running")), db, mention="<!here>")
    assert "<!here>" not in json.dumps(warning.payload())


# -- every renderer within Slack's limits -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "resource"),
    [
        ("shop-prod", "shop-prod-1234"),
        ("a" * 5000, "r" * 5000),
        (HOSTILE * 60, HOSTILE * 60),
        ("🎉" * 4000, "é" * 5000),
    ],
)
def test_every_notice_fits_slack(name: str, resource: str) -> None:
    db = database(name, resource)
    for notice in notices(backup(name=name + resource)):
        for message in (
            render(notice, db, mention="<!here>"),
            render_success(notice, db, link(900)),
            render(notice, db, link=link(5000)),
        ):
            assert_valid(message)
            assert "\u202e" not in all_text(message)
            assert "<!channel>" not in all_text(message)


@pytest.mark.parametrize(
    ("count", "token", "long_names"),
    list(itertools.product([1, 2, 9, 10, 49, 80, 500], [40, 300, 900], [False, True])),
)
def test_a_digest_of_any_size_fits_slack_and_lists_every_backup(count: int, token: int, long_names: bool) -> None:
    db = database("n" * 5000, HOSTILE * 50) if long_names else database()
    items = [
        (
            Notice(Kind.SUCCEEDED, Phase.NOTICE, None, backup(i, name=f"{i:05d}" + ("x" * 5000 if long_names else ""))),
            db,
            link(token, i),
        )
        for i in range(count)
    ]
    parts = render_digest(items)
    listed = sorted(i for part in parts for i in part.items)
    assert listed == list(range(count))  # every backup in exactly one message
    compact = count > DIGEST_COMPACT_AFTER
    lists = [p for p in parts if p.items]
    if compact:  # a count first, then the list parts
        assert not parts[0].items
        assert f"{count:,} new successful backups" in parts[0].message.text
    for number, part in enumerate(lists, start=1):
        assert_valid(part.message)
        blocks = json.dumps(part.message.blocks)
        for i in part.items:
            assert f"`{i:05d}" in blocks  # its line is there
            assert link(token, i) in blocks  # and its download button (or inline link)
        if len(lists) > 1 or compact:
            assert f"(part {number} of {len(lists)})" in part.message.text
    assert len(parts) <= count // 5 + 2  # not one message per backup


def test_a_link_longer_than_slack_accepts_is_replaced_by_a_pointer_to_the_dashboard() -> None:
    items = [(Notice(Kind.SUCCEEDED, Phase.NOTICE, None, backup()), database(), link(3100))]
    (part,) = render_digest(items)
    assert_valid(part.message)
    assert "t" * 3000 not in json.dumps(part.message.blocks)
    assert "download the backup from the dashboard" in json.dumps(part.message.blocks)


def test_the_digest_without_links_packs_lines_into_full_sections() -> None:
    items = [(Notice(Kind.SUCCEEDED, Phase.NOTICE, None, backup(i)), database(), None) for i in range(200)]
    parts = render_digest(items)
    for part in parts:
        assert_valid(part.message)
        sections = [b for b in part.message.blocks if b["type"] == "section"][1:]
        assert sum(b["text"]["text"].count("\n") + 1 for b in sections) == len(part.items)
        assert all(slack_len(b["text"]["text"]) > SECTION_TEXT_MAX - 200 for b in sections[:-1])  # sections are full
    assert len(parts) <= 5  # the count, then at most 4 list parts


def test_the_edit_of_a_resolved_message_is_safe_and_valid() -> None:
    notice = Notice(Kind.FAILED, Phase.RESOLVE, "failed", detail="backup x succeeded", thread=THREAD, opened_at=NOW)
    message = render(notice, database(HOSTILE, HOSTILE * 100))
    assert message.edit == THREAD
    blocks = edit_blocks(message.edit_text)
    assert refusal({"text": message.edit_text, "blocks": blocks}) is None
    struck = blocks[0]["text"]["text"]
    assert struck.count("~") == 2  # the strike-through we wrote, nothing from the data
    assert "<!channel>" not in struck


def test_a_kind_without_its_own_title_falls_back_to_a_readable_one() -> None:
    assert title(Notice(Kind.STUCK, Phase.UPDATE)) == "Backup stuck"
    assert title(Notice(Kind.PERIODIC_OFF, Phase.REMIND)) == "Still open: periodic backups are switched off"


def test_the_plain_text_fallback_keeps_whole_lines_and_says_when_it_cut() -> None:
    items = [(Notice(Kind.SUCCEEDED, Phase.NOTICE, None, backup(i)), database(), link(300, i)) for i in range(40)]
    part = render_digest(items)[1]  # the first list part of a compact digest
    fallback = plain_fallback(part.message)
    lines = fallback.text.split("\n")
    assert lines[0] == part.message.plain.split("\n")[0]
    assert lines[-1].startswith("… (cut")
    assert all(line in part.message.plain for line in lines[:-1])


# -- the console ---------------------------------------------------------------------------------------------------


def test_console_keeps_names_intact_and_hides_download_tokens() -> None:
    db = DatabaseInfo("osc-fr1", "shop*prod", "ad-1", "res_`1`", "postgresql")
    message = render_success(Notice(Kind.SUCCEEDED, Phase.NOTICE, None, backup(name="n*a_m`e")), db, link(64))
    text = console_text(message)
    assert "shop*prod / res_`1`" in text
    assert "n*a_m`e" in text
    assert "token=…" in text
    assert "t" * 64 not in text
    assert "t" * 64 in console_text(message, show_links=True)
    assert "[OK]" in text
    assert ":white_check_mark:" not in text


def test_mask_links_hides_every_token() -> None:
    assert mask_links('{"url":"https://h/x/download?token=abc&x=1"}') == '{"url":"https://h/x/download?token=…&x=1"}'
    assert (
        mask_links("<https://h/download?a=1&amp;token=s3cret|download>")
        == "<https://h/download?a=1&amp;token=…|download>"
    )


def test_a_message_built_from_blocks_alone_still_has_console_and_plain_forms() -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": ":red_circle: *Daily report* &lt;x&gt;\n• one"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "<https://h/download?token=s3cret|download>"}]},
    ]
    message = Message("Daily report", blocks)
    assert console_text(message) == "[CRITICAL] Daily report <x>\n• one\ndownload (https://h/download?token=…)"
    assert plain_fallback(message).text.split("\n") == [
        ":red_circle: *Daily report* &lt;x&gt;",
        "• one",
        "<https://h/download?token=s3cret|download>",
    ]
