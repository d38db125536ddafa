"""Every renderer's output within Slack's limits (slack-sdk's own Block Kit validators), Scalingo text as data."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from backup_monitor.check.group import GROUP_AT, Options, plan
from backup_monitor.check.model import Work
from backup_monitor.config import ConfigError, Settings, Target
from backup_monitor.messages import (
    DIGEST_COMPACT_AFTER,
    MESSAGE_BLOCK_TEXT_BUDGET,
    PLAIN_TEXT_MAX,
    SECTION_TEXT_MAX,
    SLOT_NEXT_STEPS,
    TITLES,
    DatabaseInfo,
    Message,
    ago,
    block_text_len,
    console_text,
    edit_blocks,
    escape,
    mask_links,
    next_step,
    plain_fallback,
    render,
    render_digest,
    render_group,
    render_outage,
    render_success,
    safe,
    slack_len,
    title,
)
from backup_monitor.records import Record, ThreadRef
from backup_monitor.rules import (
    CAUSE_ADDON,
    CAUSE_INTERNAL,
    CAUSE_SCALINGO,
    CAUSE_TOKEN,
    SLOT_SMALL,
    SLOT_STUCK,
    Evaluation,
    Kind,
    Notice,
    Phase,
)
from backup_monitor.scalingo.models import Backup
from tests.fakes.slack import refusal

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
THREAD = ThreadRef("C0BACKUPS", "1700000001.000000")
HOSTILE = "<!channel> <@U123> `tick` *bold* _it_ ~del~ \u202eevil\u2066 & <https://x.example|click>"
BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]
RUNBOOK = "https://wiki.example.com/ops/backups?page=1&x=2#alerts"


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
    """One notice of every kind and phase the renderers have a title for, plus reminders and resolutions, with
    every fact of issue 17 set (a missed slot's backup, a cause, since when, the newest usable backup, PITR)."""
    found = []
    facts: dict[str, Any] = {
        "last_usable_at": NOW - timedelta(days=3),
        "restore_point": NOW - timedelta(hours=9),
        "failing_since": NOW - timedelta(hours=2),
    }
    for kind, phase in TITLES:
        found.append(
            Notice(
                kind,
                phase,
                kind.value,
                b if kind not in (Kind.MISSING, Kind.PERIODIC_OFF, Kind.CANNOT_CHECK) else None,
                slot=NOW - timedelta(hours=8) if kind is Kind.MISSING else None,
                detail=HOSTILE * 3 if kind in (Kind.CANNOT_CHECK, Kind.MISSING, Kind.PITR_BEHIND) else "",
                median_size=900_000_000 if kind is Kind.SUSPICIOUS else None,
                thread=THREAD if phase is Phase.UPDATE else None,
                opened_at=NOW - timedelta(days=1) if phase in (Phase.UPDATE, Phase.OPEN) else None,
                reasons=(f"The database is {HOSTILE * 20}: ...", HOSTILE) if kind is Kind.MISSING else (),
                quiet=kind is Kind.MISSING,
                slot_backup=b if kind is Kind.MISSING else None,
                cause=CAUSE_TOKEN if kind is Kind.CANNOT_CHECK else "",
                reannounce=phase is Phase.OPEN,
                **facts,
            )
        )
    for kind in {k for k, p in TITLES if p is Phase.OPEN}:  # the kinds that are incidents
        for phase in (Phase.REMIND, Phase.RESOLVE):
            found.append(
                Notice(
                    kind,
                    phase,
                    kind.value,
                    detail=HOSTILE,
                    opened_at=NOW - timedelta(days=1),
                    thread=THREAD,
                    slot_backup=b if kind is Kind.MISSING else None,
                    **facts,
                )
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
            render(notice, db, mention="<!here>", now=NOW, runbook=RUNBOOK),
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


# -- issue 17: alerts that carry the facts ------------------------------------------------------------------------

THREE_DAYS_AGO = NOW - timedelta(days=3)
INCIDENT_KINDS = sorted({k for k, p in TITLES if p is Phase.OPEN} - {Kind.API_OUTAGE})  # a region's outage has no db


def slack_token(moment: datetime) -> str:
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}|{moment:%Y-%m-%d %H:%M} UTC>"


def facts_text(message: Message) -> str:
    return "\n".join(b["text"]["text"] for b in message.blocks if b["type"] == "section")


def footer_text(message: Message) -> str:
    return str(next(b["elements"][0]["text"] for b in message.blocks if b["type"] == "context"))


@pytest.mark.parametrize("kind", INCIDENT_KINDS)
@pytest.mark.parametrize("phase", [Phase.OPEN, Phase.UPDATE, Phase.REMIND])
def test_every_alert_and_reminder_says_how_old_the_newest_usable_backup_is(kind: Kind, phase: Phase) -> None:
    notice = Notice(kind, phase, kind.value, last_usable_at=THREE_DAYS_AGO, opened_at=NOW - timedelta(days=1))
    message = render(notice, database(), now=NOW)
    assert f"• Newest usable backup: {slack_token(THREE_DAYS_AGO)} (3 days ago)" in facts_text(message)
    assert "Newest usable backup: 2026-11-24 09:00 UTC (3 days ago)" in message.console
    assert "No usable backup is known" not in message.plain


def test_an_alert_without_a_known_usable_backup_says_so() -> None:
    message = render(Notice(Kind.FAILED, Phase.OPEN, "failed", backup(status="error")), database(), now=NOW)
    assert "• No usable backup is known" in facts_text(message)


def test_an_alert_with_point_in_time_recovery_gives_its_latest_restore_point() -> None:
    restore_point = NOW - timedelta(minutes=7)
    notice = Notice(Kind.MISSING, Phase.OPEN, "missing", slot=NOW - timedelta(hours=8), restore_point=restore_point)
    text = facts_text(render(notice, database(), now=NOW))
    assert f"• Latest restore point (point-in-time recovery): {slack_token(restore_point)} (7 minutes ago)" in text
    assert "No usable backup is known" not in text  # the restore point is what can be restored
    both = render(replace(notice, last_usable_at=THREE_DAYS_AGO), database(), now=NOW)
    assert "Newest usable backup:" in facts_text(both)
    assert "Latest restore point" in facts_text(both)


def test_resolutions_and_one_off_notices_do_not_repeat_the_newest_usable_backup() -> None:
    for notice in (
        Notice(Kind.FAILED, Phase.RESOLVE, "failed", detail="x", last_usable_at=NOW, thread=THREAD),
        Notice(Kind.FAILED, Phase.NOTICE, None, backup(status="error"), last_usable_at=NOW),
        Notice(Kind.SUCCEEDED, Phase.NOTICE, None, backup(), last_usable_at=NOW),
    ):
        text = render(notice, database(), now=NOW).plain
        assert "Newest usable backup" not in text
        assert "No usable backup is known" not in text


def test_without_the_checks_clock_the_date_is_given_without_an_age() -> None:
    notice = Notice(Kind.FAILED, Phase.OPEN, "failed", backup(status="error"), last_usable_at=THREE_DAYS_AGO)
    text = facts_text(render(notice, database()))
    assert f"• Newest usable backup: {slack_token(THREE_DAYS_AGO)}\n" in text + "\n"
    assert " ago" not in text


@pytest.mark.parametrize(
    ("age", "text"),
    [(timedelta(seconds=20), "just now"), (timedelta(minutes=-5), "just now"), (timedelta(minutes=1), "1 minute ago"),
     (timedelta(minutes=59), "59 minutes ago"), (timedelta(hours=1), "1 hour ago"),
     (timedelta(hours=47), "47 hours ago"), (timedelta(days=2), "2 days ago"),
     (timedelta(days=3, hours=23), "3 days ago")],
)  # fmt: skip
def test_ages_read_naturally(age: timedelta, text: str) -> None:
    assert ago(NOW - age, NOW) == text


def test_a_grouped_line_says_how_old_the_newest_usable_backup_is_compactly() -> None:
    items = [
        (Notice(Kind.FAILED, Phase.OPEN, "failed", backup(status="error"), last_usable_at=THREE_DAYS_AGO), database()),
        (Notice(Kind.FAILED, Phase.OPEN, "failed", backup(status="error")), database("blog", "blog-1")),
        (
            Notice(Kind.FAILED, Phase.OPEN, "failed", backup(status="error"), restore_point=NOW - timedelta(hours=2)),
            database("ledger", "ledger-1"),
        ),
    ]
    (part,) = render_group(items, now=NOW)
    lines = part.message.plain.split("\n")[1:4]
    assert lines[0].endswith("`error` · newest usable 3 days ago")
    assert lines[1].endswith("`error` · no usable backup known")
    assert lines[2].endswith("`error` · restore point 2 hours ago")
    (dated,) = render_group(items[:1])  # without the clock: the date
    assert f"· newest usable {slack_token(THREE_DAYS_AGO)}" in dated.message.plain
    resolved = [(Notice(Kind.FAILED, Phase.RESOLVE, "failed", last_usable_at=NOW, opened_at=NOW), database())]
    assert "newest usable" not in render_group(resolved, now=NOW)[0].message.plain


def test_the_planner_gives_every_renderer_the_checks_clock_and_the_runbook() -> None:
    target = Target("osc-fr1", "shop-prod", "ad-shop")
    failed = Notice(Kind.FAILED, Phase.OPEN, "failed", backup(status="error"), last_usable_at=THREE_DAYS_AGO)
    outage = Notice(Kind.API_OUTAGE, Phase.OPEN, "api_outage", detail="12 of 14 databases could not be read")

    def work(notices: Sequence[Notice], key: str = "", outage_region: str | None = None) -> Work:
        record = Record(key or target.key)
        return Work(target, record, database(), Evaluation(tuple(notices), record, NOW), outage_region=outage_region)

    one = plan([work([failed])], Options(now=NOW, runbook_url=RUNBOOK))
    grouped = plan([work([failed], f"k{i}") for i in range(GROUP_AT)], Options(now=NOW, runbook_url=RUNBOOK))
    region = plan([work([outage], outage_region="osc-fr1")], Options(now=NOW, runbook_url=RUNBOOK))
    for out in (one, grouped, region):
        (sent,) = out
        assert sent.message is not None
        assert f"<{escape(RUNBOOK)}|Runbook>" in footer_text(sent.message)
    assert one[0].message is not None
    assert "(3 days ago)" in one[0].message.plain
    assert grouped[0].message is not None
    assert "· newest usable 3 days ago" in grouped[0].message.plain


# A missed slot where a backup is, stuck or too small


def slot_notice(phase: Phase, at_slot: Backup | None) -> Notice:
    return Notice(
        Kind.MISSING,
        phase,
        "missing",
        slot=NOW - timedelta(hours=8),
        detail="No usable backup for the 01:00 UTC slot of 2026-11-27",
        opened_at=NOW - timedelta(days=1),
        thread=THREAD if phase is not Phase.OPEN else None,
        slot_backup=at_slot,
    )


STUCK = Backup("bk-stuck", NOW - timedelta(hours=8), "running", started_at=NOW - timedelta(hours=8), name="s_1")
SMALL = Backup("bk-small", NOW - timedelta(hours=8), "done", name="s_2", size=41_000_000)


@pytest.mark.parametrize(
    ("at_slot", "titles"),
    [
        (STUCK, ["Daily backup stuck", "Daily backup still stuck", "Still open: daily backup stuck",
                 "Resolved: daily backup stuck"]),
        (SMALL, ["Daily backup too small", "Daily backup still too small", "Still open: daily backup too small",
                 "Resolved: daily backup too small"]),
        (None, ["Daily backup missing", "Daily backup still missing", "Still open: daily backup missing",
                "Resolved: daily backup missing"]),
        (replace(SMALL, status="error"), ["Daily backup missing", "Daily backup still missing",
                                          "Still open: daily backup missing", "Resolved: daily backup missing"]),
    ],
)  # fmt: skip
def test_a_missed_slot_is_titled_by_the_backup_at_the_slot(at_slot: Backup | None, titles: list[str]) -> None:
    phases = [Phase.OPEN, Phase.UPDATE, Phase.REMIND, Phase.RESOLVE]
    assert [title(slot_notice(phase, at_slot)) for phase in phases] == titles
    message = render(slot_notice(Phase.OPEN, at_slot), database(), now=NOW)
    assert message.text.startswith(titles[0])
    if at_slot is not None and at_slot.status != "error":
        assert footer_text(message).startswith(
            f"Next: {SLOT_NEXT_STEPS[SLOT_STUCK if at_slot is STUCK else SLOT_SMALL]}"
        )


def test_a_stuck_or_small_slot_names_its_backup() -> None:
    stuck = facts_text(render(slot_notice(Phase.OPEN, STUCK), database(), now=NOW))
    assert (
        f"• Backup at the slot: `s_1`, status `running`, unknown size, started {slack_token(STUCK.created_at)}"
        " (8 hours ago)"
    ) in stuck
    small = facts_text(render(slot_notice(Phase.OPEN, SMALL), database(), now=NOW))
    assert "• Backup at the slot: `s_2`, status `done`, 39.1 MiB" in small
    hostile = replace(SMALL, name=HOSTILE, status="<!channel>")
    text = all_text(render(slot_notice(Phase.OPEN, hostile), database(), now=NOW))
    assert "<!channel>" not in text
    # a resolution does not repeat the backup as it was announced (it has moved on since)
    assert "Backup at the slot" not in render(slot_notice(Phase.RESOLVE, STUCK), database(), now=NOW).plain
    grouped = render_group([(slot_notice(Phase.OPEN, STUCK), database())] * 5, now=NOW)[0].message
    assert grouped.text == "Daily backup stuck on 5 databases"
    assert ", `s_1` `running` unknown size" in grouped.plain


# "Cannot check": the next step by cause, since when


@pytest.mark.parametrize(
    ("cause", "step"),
    [
        (CAUSE_SCALINGO, "Scalingo's side"),
        (CAUSE_SCALINGO, "look at Scalingo's status page. Nothing to fix here; the monitor retries at every check."),
        (CAUSE_TOKEN, "Check the API token"),
        (CAUSE_TOKEN, "Rotate it"),
        (CAUSE_ADDON, "The addon or app was not found: deleted, renamed, or not visible to this token."),
        (CAUSE_INTERNAL, "look at the monitor's logs and its state store"),
        ("", "Check the API token (it may have been revoked) and whether the addon still exists."),
        ("a cause from a newer version", "Check the API token (it may have been revoked)"),
    ],
)
def test_the_next_step_of_cannot_check_depends_on_its_cause(cause: str, step: str) -> None:
    for phase in (Phase.OPEN, Phase.REMIND):
        message = render(Notice(Kind.CANNOT_CHECK, phase, "cannot_check", detail="x", cause=cause), database())
        assert step in footer_text(message)
        assert footer_text(message).startswith(f"Next: {next_step(Notice(Kind.CANNOT_CHECK, phase, cause=cause))}")
    assert next_step(Notice(Kind.CANNOT_CHECK, Phase.RESOLVE, cause=cause)) is None


def test_cannot_check_says_since_when_reads_fail() -> None:
    since = NOW - timedelta(hours=5)
    notice = Notice(Kind.CANNOT_CHECK, Phase.OPEN, "cannot_check", detail="x (20 checks in a row)", failing_since=since)
    assert f"• Reads have failed since {slack_token(since)} (5 hours ago)" in facts_text(
        render(notice, database(), now=NOW)
    )
    assert "Reads have failed" not in render(replace(notice, failing_since=None), database(), now=NOW).plain
    resolved = replace(notice, phase=Phase.RESOLVE, thread=THREAD, opened_at=since)
    assert "Reads have failed" not in render(resolved, database(), now=NOW).plain


def test_point_in_time_recovery_has_its_titles_and_next_steps() -> None:
    restore_point = NOW - timedelta(hours=9)
    behind = Notice(Kind.PITR_BEHIND, Phase.OPEN, "pitr_behind", detail="9 hours behind", restore_point=restore_point)
    message = render(behind, database(), mention="<!here>", now=NOW)
    assert message.text.startswith("<!here> Point-in-time recovery behind: shop-prod")
    assert ":red_circle:" in message.blocks[0]["text"]["text"]
    assert "• 9 hours behind" in facts_text(message)
    assert f"(point-in-time recovery): {slack_token(restore_point)} (9 hours ago)" in facts_text(message)
    assert "Next: Check point-in-time recovery in the database dashboard" in footer_text(message)
    assert title(replace(behind, phase=Phase.REMIND)) == "Still open: point-in-time recovery behind"
    assert title(replace(behind, phase=Phase.RESOLVE)) == "Resolved: point-in-time recovery behind"
    only = render(Notice(Kind.PITR_ONLY, Phase.OPEN, "pitr_only", restore_point=NOW), database(), now=NOW)
    assert only.text.startswith("Periodic backups off (covered by point-in-time recovery): shop-prod")
    assert ":large_orange_circle:" in only.blocks[0]["text"]["text"]
    assert footer_text(only).startswith("Next: Nothing to do if this is intended. · <https://dashboard")


# A re-announcement


def test_a_reannounced_incident_says_so_in_one_line() -> None:
    opened = NOW - timedelta(days=2)
    notice = Notice(Kind.FAILED, Phase.OPEN, "failed", backup(status="error"), opened_at=opened, reannounce=True)
    text = facts_text(render(notice, database(), now=NOW))
    line = f"• Open since {slack_token(opened)}; announced again here because the alert destination changed"
    assert line in text
    assert text.count("announced again") == 1
    assert "Already open; announced again here" in render(replace(notice, opened_at=None), database()).plain
    assert "announced again" not in render(replace(notice, reannounce=False), database()).plain
    grouped = render_group([(notice, database())] * 5, now=NOW)[0].message
    assert grouped.plain.count("announced again (new destination)") == 5


# The edit of a resolved incident's first message


def test_the_edit_of_a_resolved_message_keeps_the_facts() -> None:
    opened = NOW - timedelta(days=2, hours=3)
    notice = Notice(
        Kind.MISSING,
        Phase.RESOLVE,
        "missing",
        slot=NOW - timedelta(days=2, hours=8),
        detail="Backup 20261127010000_shop was made",
        opened_at=opened,
        thread=THREAD,
        slot_backup=STUCK,
    )
    message = render(notice, database(), now=NOW)
    assert message.edit == THREAD
    (block,) = edit_blocks(message.edit_text)
    assert block["text"]["text"].split("\n") == [
        ":white_check_mark: ~Daily backup stuck: shop-prod/shop-prod-1234 (postgresql, osc-fr1)~"
        " (resolved, see thread)",
        f"• Lasted 2 days (open since {slack_token(opened)})",
        "• Closed: Backup 20261127010000_shop was made",
    ]
    # without the clock, or the opening time, the edit says what it knows
    assert "Lasted" not in render(notice, database()).edit_text
    assert "Open since" in render(notice, database()).edit_text
    assert render(replace(notice, opened_at=None, detail=""), database(), now=NOW).edit_text.count("\n") == 0
    # a grouped first message is shared by other incidents: never edited
    assert render(replace(notice, shared=True), database(), now=NOW).edit is None


def test_an_edit_saved_by_an_older_version_still_reads() -> None:
    (block,) = edit_blocks("Resolved: backup failed: shop-prod/shop-prod-1234 (postgresql, osc-fr1)")
    assert block["text"]["text"] == (
        ":white_check_mark: ~Resolved: backup failed: shop-prod/shop-prod-1234 (postgresql, osc-fr1)~"
        " (resolved, see thread)"
    )


@pytest.mark.parametrize(("name", "detail"), [(HOSTILE, HOSTILE * 10), ("a" * 5000, "é" * 5000), ("🎉" * 4000, "")])
def test_the_edit_of_a_resolved_message_stays_within_slacks_limits_and_safe(name: str, detail: str) -> None:
    notice = Notice(Kind.FAILED, Phase.RESOLVE, "failed", detail=detail, opened_at=NOW, thread=THREAD)
    message = render(notice, database(name, name), now=NOW)
    blocks = edit_blocks(message.edit_text)
    assert refusal({"text": message.edit_text, "blocks": blocks}) is None
    assert slack_len(message.edit_text) <= 2000
    struck = blocks[0]["text"]["text"]
    assert struck.count("~") == 2
    assert "<!channel>" not in struck
    assert "\u202e" not in struck


# RUNBOOK_URL


@pytest.mark.parametrize("kind", INCIDENT_KINDS)
def test_every_alert_links_the_runbook_in_its_footer(kind: Kind) -> None:
    for phase in (Phase.OPEN, Phase.UPDATE, Phase.REMIND):
        message = render(Notice(kind, phase, kind.value), database(), now=NOW, runbook=RUNBOOK)
        assert footer_text(message).endswith(f" · <{escape(RUNBOOK)}|Runbook>")
        assert message.console.endswith(f"Runbook: {RUNBOOK}")
    outage = render_outage(Notice(Kind.API_OUTAGE, Phase.OPEN, "api_outage"), "osc-fr1", runbook=RUNBOOK)
    assert footer_text(outage).endswith(f" · <{escape(RUNBOOK)}|Runbook>")


def test_successes_resolutions_and_the_daily_report_have_no_runbook() -> None:
    resolved = Notice(Kind.FAILED, Phase.RESOLVE, "failed", detail="x", thread=THREAD, opened_at=NOW)
    for message in (
        render(resolved, database(), now=NOW, runbook=RUNBOOK),
        render(Notice(Kind.SUCCEEDED, Phase.NOTICE, None, backup()), database(), runbook=RUNBOOK),
        render_group([(resolved, database())] * 5, now=NOW, runbook=RUNBOOK)[0].message,
        render_outage(replace(resolved, kind=Kind.API_OUTAGE), "osc-fr1", now=NOW, runbook=RUNBOOK),
    ):
        assert "Runbook" not in all_text(message)
    assert "Runbook" not in render(Notice(Kind.FAILED, Phase.OPEN, "failed"), database()).plain  # not configured


@pytest.mark.parametrize(
    "value",
    ["https://wiki.example.com/ops/backups#restore", "https://w.example/p?id=42&lang=en", "http://127.0.0.1:8080/rb"],
)
def test_runbook_url_takes_an_https_link(value: str) -> None:
    assert Settings.from_env({"SCALINGO_API_TOKEN": "tk", "RUNBOOK_URL": value}).runbook_url == value
    assert Settings.from_env({"SCALINGO_API_TOKEN": "tk"}).runbook_url is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("http://wiki.example.com/ops", "must be https outside loopback"),
        ("ftp://wiki.example.com/ops", "must be an https URL"),
        ("wiki.example.com/ops", "must be an https URL"),
        ("https://", "must be an https URL"),
        ("https://[::1", "must be an https URL"),
        ("https://wiki.example.com/a|b", "must not contain spaces"),
        ("https://wiki.example.com/<!channel>", "must not contain spaces"),
        ("https://wiki.example.com/a b", "must not contain spaces"),
        ("https://wiki.example.com/" + "a" * 1000, "at most 1000 characters"),
        ("https://user:secret@wiki.example.com/ops", "must not contain credentials (value not shown)"),
    ],
)
def test_a_bad_runbook_url_is_a_clear_configuration_error(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"SCALINGO_API_TOKEN": "tk", "RUNBOOK_URL": value})
    assert caught.value.variable == "RUNBOOK_URL"
    assert problem in str(caught.value)
    assert "secret" not in str(caught.value)
