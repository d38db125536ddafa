"""Issue 18, point 5: two Scalingo accounts (two fake Scalingo APIs, two API tokens) checked as two shards into
ONE state store, on SQLite and on DynamoDB Local. Each shard lists its own databases and keeps its own
discovery, cursor, bearer and daily report; a database both accounts see is one record, and its addon token,
sealed by the other shard's API token, is simply fetched again."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_monitor import cli
from backup_monitor.budget import CURSOR_KEY, cursor_key, left_keys
from backup_monitor.check.targets import discovery_key, target_from_name
from backup_monitor.config import Settings
from backup_monitor.daily_report import report_key
from backup_monitor.monitor import Summary, run_check
from backup_monitor.sealing import TokenSealer
from backup_monitor.state.base import StateStore
from backup_monitor.state.chunks import load_record
from backup_monitor.state.tokens import bearer_blob_key
from backup_monitor.status import read_status
from backup_monitor.wiring import build_clients, build_store
from tests.fakes import FakeScalingo
from tests.fakes.slack import FakeSlack

ACME, GLOBEX = "/bm/acme/scalingo-token", "/bm/globex/scalingo-token"
NOW = datetime.now(UTC).replace(microsecond=0)


def healthy(fake: FakeScalingo, app: str, addon_id: str) -> None:
    """A database with a good backup at its 01:00 UTC slot of each of the last three days."""
    fake.add_database(app, addon_id)
    for days in range(3):
        slot = (NOW - timedelta(days=days)).replace(hour=1, minute=0, second=0)
        if slot <= NOW:
            fake.add_backup(addon_id, slot)


@pytest.fixture
def accounts() -> Iterator[tuple[FakeScalingo, FakeScalingo]]:
    with FakeScalingo(api_token="tk-us-acme-api-token") as acme, FakeScalingo(api_token="tk-us-globex-token") as globex:
        for app, addon in (("shop", "ad-shop"), ("billing", "ad-billing"), ("shared", "ad-shared")):
            healthy(acme, app, addon)
        for app, addon in (("crm", "ad-crm"), ("wiki", "ad-wiki"), ("shared", "ad-shared")):
            healthy(globex, app, addon)  # ad-shared: one database both accounts can see
        yield acme, globex


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture(params=["sqlite", "dynamodb"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "sqlite":
        return {"STATE_PATH": str(tmp_path / "state.sqlite3")}
    return {"STATE_TABLE": request.getfixturevalue("dynamodb_table")}


def shards_for(acme: FakeScalingo, globex: FakeScalingo, slack: FakeSlack, where: dict[str, str]) -> list[Settings]:
    """The stack's settings (one list of two token parameters), then each shard's, with its account's token (as
    read from its parameter) and, the fakes being two servers, its account's URLs."""
    base = Settings.from_env(
        {
            "SCALINGO_API_TOKEN_PARAMETERS": f"{ACME},{GLOBEX}",
            "SCALINGO_AUTH_URL": acme.url,
            "SCALINGO_API_URL": acme.region_url(),
            "SCALINGO_DB_API_URL": acme.region_url(),
            "SCALINGO_API_RATE_LIMIT": "6000",
            "SLACK_WEBHOOK_URL": slack.webhook_url,
            "SUCCESS_NOTICES": "off",
            "VERIFY_ARCHIVES_EVERY_DAYS": "0",
            "DAILY_REPORT_AT": "00:00 UTC",  # due at once: each shard sends its own
            "SWEEP_EVERY_HOURS": "0",  # every database at every check
            **where,
        }
    )
    first = base.for_shard(ACME).with_secrets(acme.api_token, None, None)
    second = replace(
        base.for_shard(GLOBEX), auth_url=globex.url, api_url=globex.region_url(), db_api_url=globex.region_url()
    ).with_secrets(globex.api_token, None, None)
    return [first, second]


def check(settings: Settings, remaining: float | None = None) -> Summary:
    """One check with clients of its own, as a new process (or a cold Lambda container) would have."""
    return run_check(settings, build_clients(settings), datetime.now(UTC), remaining_seconds=remaining)


def discovered(store: StateStore, settings: Settings) -> set[str]:
    record = load_record(store, discovery_key(settings))
    assert record is not None
    return {target_from_name(name).key for name in record.discovered}


def cursor_of(store: StateStore, shard: str) -> list[str]:
    return left_keys(store.load_blobs([cursor_key(shard)]), cursor_key(shard))


def test_two_accounts_as_two_shards_share_one_store_and_nothing_else(
    accounts: tuple[FakeScalingo, FakeScalingo], slack: FakeSlack, where: dict[str, str]
) -> None:
    acme, globex = accounts
    first, second = shards_for(acme, globex, slack, where)
    assert first.shard != second.shard

    # WHEN each shard checks once
    one, two = check(first), check(second)

    # THEN each listed and read its own account's databases, the shared one included
    assert (one.ok, one.targets, one.checked) == (True, 3, 3)
    assert (two.ok, two.targets, two.checked) == (True, 3, 3)
    store = build_store(replace(first, shard=""))  # the table itself, as no shard sees it
    mine = {"osc-fr1/ad-shop", "osc-fr1/ad-billing", "osc-fr1/ad-shared"}
    theirs = {"osc-fr1/ad-crm", "osc-fr1/ad-wiki", "osc-fr1/ad-shared"}
    assert discovered(store, first) == mine
    assert discovered(store, second) == theirs
    assert load_record(store, discovery_key(replace(first, shard=""))) is None  # no stack-wide discovery
    # AND one record per database, the shared one too (its backups handled once)
    records = store.load_many(sorted(mine | theirs))
    assert set(records) == mine | theirs
    # AND each its own bearer, sealed with its own API token only
    bearers = store.load_blobs([bearer_blob_key(first.shard), bearer_blob_key(second.shard), bearer_blob_key()])
    assert set(bearers) == {bearer_blob_key(first.shard), bearer_blob_key(second.shard)}
    sealers = {first.shard: TokenSealer(acme.api_token), second.shard: TokenSealer(globex.api_token)}
    for shard, other in ((first.shard, second.shard), (second.shard, first.shard)):
        blob = bearers[bearer_blob_key(shard)]
        own, others = sealers[shard].open(blob.key, blob.data), sealers[other].open(blob.key, blob.data)
        assert (own is not None, others) == (True, None)
    # AND each its own daily report, saying whose it is
    reports = store.load_many([report_key(first), report_key(second), report_key(replace(first, shard=""))])
    assert set(reports) == {report_key(first), report_key(second)}
    texts = [m["text"] for m in slack.messages() if "Daily backup report" in m["text"]]
    assert sorted(texts) == sorted(
        f"Daily backup report (shard {s.shard}): 3 databases, 3 with a fresh usable backup, 0 open incidents"
        for s in (first, second)
    )
    assert (acme.count("auth"), globex.count("auth")) == (1, 1)

    # WHEN each shard's next check has no time to read anything
    assert check(first, remaining=60).left == 3
    assert check(second, remaining=60).left == 3
    # THEN each remembers its own databases left, apart
    assert set(cursor_of(store, first.shard)) == mine
    assert set(cursor_of(store, second.shard)) == theirs
    assert store.load_blobs([CURSOR_KEY]) == {}

    # WHEN the first shard checks again, in a new process
    shop_tokens = acme.count("main", "/addons/ad-shop/token")
    shared_tokens = acme.count("main", "/addons/ad-shared/token")
    again = check(first)
    # THEN it took what it had left and cleared its own cursor only
    assert (again.ok, again.checked) == (True, 3)
    assert cursor_of(store, first.shard) == []
    assert set(cursor_of(store, second.shard)) == theirs
    # AND it restored its own bearer (no token exchange) and its own addon tokens; the shared database's,
    # stored last by the other shard (sealed with the other API token), was ignored and fetched again
    assert acme.count("auth") == 1
    assert acme.count("main", "/addons/ad-shop/token") == shop_tokens
    assert acme.count("main", "/addons/ad-shared/token") == shared_tokens + 1
    assert not [m for m in slack.messages() if "cannot check" in str(m).lower()]

    # AND `status` reads each shard's own databases and report
    first_status, second_status = read_status(first, datetime.now(UTC)), read_status(second, datetime.now(UTC))
    assert f"shard {first.shard}" in first_status
    assert "shop" in first_status
    assert "crm" not in first_status
    assert "crm" in second_status
    assert "shop" not in second_status


def test_the_command_prints_each_shards_status_and_names_the_shards_of_a_typo(
    accounts: tuple[FakeScalingo, FakeScalingo],
    slack: FakeSlack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    acme, globex = accounts
    where = {"STATE_PATH": str(tmp_path / "state.sqlite3")}
    first, second = shards_for(acme, globex, slack, where)
    assert check(first).ok
    assert check(second).ok
    for key in ("SCALINGO_API_TOKEN", "SCALINGO_API_TOKEN_PARAMETER"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SCALINGO_API_TOKEN_PARAMETERS", f"{ACME},{GLOBEX}")
    monkeypatch.setenv("STATE_PATH", where["STATE_PATH"])
    capsys.readouterr()

    assert cli.main(["status"]) == cli.EXIT_OK  # every shard's report, in the listed order
    out = capsys.readouterr().out
    assert out.index(f"shard {first.shard}") < out.index("shop") < out.index(f"shard {second.shard}")
    assert out.index(f"shard {second.shard}") < out.index("crm")
    assert cli.main(["status", "--shard", GLOBEX]) == cli.EXIT_OK  # one, by parameter name (or id)
    out = capsys.readouterr().out
    assert ("crm" in out, "shop" in out, f"shard {first.shard}" in out) == (True, False, False)

    assert cli.main(["check", "--shard", "acme"]) == cli.EXIT_USAGE  # a typo: nothing is read, nothing checked
    assert f"no shard 'acme' in SCALINGO_API_TOKEN_PARAMETERS; the shards are {first.shard} ({ACME})" in (
        capsys.readouterr().err
    )
    monkeypatch.setenv("SCALINGO_API_TOKEN", "tk-us-one-more")
    assert cli.main(["check"]) == cli.EXIT_USAGE
    assert "SCALINGO_API_TOKEN_PARAMETERS: set either it" in capsys.readouterr().err
