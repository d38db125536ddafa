"""Token shards (SCALINGO_API_TOKEN_PARAMETERS): the setting's validation, the shards' ids, and the state keys a
check keeps one of: exactly as before without shards, the shard's own with one."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backup_monitor.budget import CURSOR_KEY, cursor_key, cursor_part_keys, left_keys, save_cursor_if_changed
from backup_monitor.check.inhibit import outage_key
from backup_monitor.check.model import ClaimClock, Clients, Run
from backup_monitor.check.targets import discovery_key
from backup_monitor.check.unreadable import unreadable_key
from backup_monitor.config import ConfigError, Settings, UnknownShardError, shard_id
from backup_monitor.daily_report import report_key
from backup_monitor.notifiers import ConsoleNotifier
from backup_monitor.scalingo.client import ScalingoClient
from backup_monitor.scalingo.tokens import BEARER_KEY, CachedToken, TokenCache, addon_key
from backup_monitor.sealing import TokenSealer
from backup_monitor.state.base import Blob, shard_of
from backup_monitor.state.sqlite import SqliteStateStore
from backup_monitor.state.tokens import TOKEN_KEY_PREFIX, bearer_blob_key, restore_tokens, save_tokens, token_keys
from backup_monitor.wiring import build_scalingo, build_store

ACME = "/backup-monitor/acme/scalingo-token"
GLOBEX = "/backup-monitor/globex/scalingo-token"
NOW = 1_800_000_000.0
NOW_DT = datetime.fromtimestamp(NOW, UTC)
SHARDED = {"SCALINGO_API_TOKEN_PARAMETERS": f"{ACME},{GLOBEX}", "SCALINGO_REGIONS": "osc-fr1,osc-secnum-fr1"}


def sharded(**extra: str) -> Settings:
    return Settings.from_env({**SHARDED, **extra})


# -- the setting ------------------------------------------------------------------------------------------------


def test_each_listed_parameter_is_a_shard_in_the_listed_order() -> None:
    settings = sharded()
    assert settings.api_token_parameters == (ACME, GLOBEX)
    assert list(settings.shards.items()) == [(shard_id(ACME), ACME), (shard_id(GLOBEX), GLOBEX)]
    assert settings.shard == ""  # the stack's settings: no shard until one is chosen
    assert Settings.from_env({"SCALINGO_API_TOKEN_PARAMETERS": f" {ACME} , ,{GLOBEX},"}).shards == settings.shards


@pytest.mark.parametrize(
    ("env", "variable", "problem"),
    [
        ({"SCALINGO_API_TOKEN": "tk-us-x"}, "SCALINGO_API_TOKEN_PARAMETERS", "or SCALINGO_API_TOKEN, not both"),
        ({"SCALINGO_API_TOKEN_PARAMETER": "/bm/t"}, "SCALINGO_API_TOKEN_PARAMETERS", "or SCALINGO_API_TOKEN_PARAMETER"),
        ({"SCALINGO_API_TOKEN_PARAMETERS": f"{ACME},{ACME}"}, "SCALINGO_API_TOKEN_PARAMETERS", "twice"),
        ({"SCALINGO_API_TOKEN_PARAMETERS": ", ,"}, "SCALINGO_API_TOKEN_PARAMETERS", "lists no parameter"),
        ({"SCALINGO_API_TOKEN_PARAMETERS": "/bm/a token"}, "SCALINGO_API_TOKEN_PARAMETERS", "not an SSM parameter"),
        ({"SCALINGO_API_TOKEN_PARAMETERS": "/bm/a;b"}, "SCALINGO_API_TOKEN_PARAMETERS", "not an SSM parameter"),
        ({"SCALINGO_API_TOKEN_PARAMETERS": "/bm/"}, "SCALINGO_API_TOKEN_PARAMETERS", "not an SSM parameter"),
        ({"SCALINGO_API_TOKEN_PARAMETERS": "/bm//a"}, "SCALINGO_API_TOKEN_PARAMETERS", "not an SSM parameter"),
        ({"MONITORED_DATABASES": "shop/ad-shop"}, "MONITORED_DATABASES", "each shard discovers its own"),
    ],
)
def test_a_bad_list_or_a_second_token_source_names_the_variable(
    env: dict[str, str], variable: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**SHARDED, **env})
    assert caught.value.variable == variable
    assert problem in caught.value.problem


def test_no_token_source_at_all_names_the_three() -> None:
    with pytest.raises(ConfigError, match="SCALINGO_API_TOKEN_PARAMETERS") as caught:
        Settings.from_env({})
    assert caught.value.variable == "SCALINGO_API_TOKEN"


def test_a_bad_value_is_said_without_contacting_anything() -> None:
    # The name is checked, never read: a secret value cannot end in the message.
    with pytest.raises(ConfigError, match=r"^SCALINGO_API_TOKEN_PARAMETERS: 'tk-us-oops pasted' is not"):
        Settings.from_env({"SCALINGO_API_TOKEN_PARAMETERS": "tk-us-oops pasted"})


# -- shard ids ----------------------------------------------------------------------------------------------------


def test_an_id_is_short_readable_and_made_of_letters_digits_and_dashes() -> None:
    assert re.fullmatch(r"scalingo-token-[0-9a-f]{6}", shard_id(ACME))
    assert re.fullmatch(r"my-token-[0-9a-f]{6}", shard_id("/Ops/My_Token"))
    long = shard_id("/bm/" + "a" * 500)
    assert len(long) <= 24 + 7
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", long)
    assert re.fullmatch(r"token-[0-9a-f]{6}", shard_id("/bm/___"))  # nothing readable left: still an id


def test_an_id_depends_on_the_name_only() -> None:
    assert shard_id(ACME) == shard_id(ACME)
    assert shard_id(ACME) != shard_id(GLOBEX)  # the same last part, in other paths
    reordered = sharded(SCALINGO_API_TOKEN_PARAMETERS=f"{GLOBEX},{ACME}")
    assert set(reordered.shards) == set(sharded().shards)
    assert reordered.for_shard(shard_id(ACME)) == sharded().for_shard(shard_id(ACME))


def test_a_shard_is_chosen_by_id_or_by_parameter_name() -> None:
    base = sharded()
    acme = base.for_shard(shard_id(ACME))
    assert base.for_shard(ACME) == acme
    assert (acme.shard, acme.api_token_parameter, acme.api_token_parameters) == (shard_id(ACME), ACME, ())
    assert acme.api_token_variable == "SCALINGO_API_TOKEN_PARAMETERS"  # its SSM errors name the list
    assert (acme.regions, acme.state_table, acme.state_path) == (base.regions, base.state_table, base.state_path)
    acme.validate_sources()  # one token source: a shard's settings are a valid single-token configuration


def test_an_unknown_shard_is_an_error_naming_the_shards() -> None:
    with pytest.raises(UnknownShardError, match=rf"no shard 'nope'.*{shard_id(ACME)} \({ACME}\)"):
        sharded().for_shard("nope")
    with pytest.raises(UnknownShardError, match="one API token"):
        Settings.from_env({"SCALINGO_API_TOKEN": "tk-us-x"}).for_shard(shard_id(ACME))


def test_the_stack_settings_of_several_tokens_cannot_run_a_check() -> None:
    with pytest.raises(ConfigError, match="one shard"):
        build_scalingo(sharded())


# -- state keys -----------------------------------------------------------------------------------------------


def test_without_a_shard_every_key_is_what_it_always_was() -> None:
    settings = Settings.from_env({"SCALINGO_API_TOKEN": "tk-us-x", "SCALINGO_REGIONS": "osc-fr1,osc-secnum-fr1"})
    assert discovery_key(settings) == "__discovery__/osc-fr1,osc-secnum-fr1"
    assert report_key(settings) == "__report__/osc-fr1,osc-secnum-fr1"
    assert unreadable_key(settings) == "__unreadable__/osc-fr1,osc-secnum-fr1"
    assert outage_key("osc-fr1") == outage_key("osc-fr1", settings.shard) == "__outage__/osc-fr1"
    assert cursor_key() == CURSOR_KEY == "__cursor__/check"
    assert bearer_blob_key() == "__tokens__/bearer"
    assert token_keys(["osc-fr1/ad-1"]) == ["__tokens__/bearer", "__tokens__/addon/osc-fr1/ad-1"]


def test_each_shard_has_its_own_singletons_and_shares_the_databases() -> None:
    acme, globex = (sharded().for_shard(name) for name in (ACME, GLOBEX))
    keys = {}
    for settings in (acme, globex):
        shard = settings.shard
        keys[shard] = {
            discovery_key(settings),
            report_key(settings),
            unreadable_key(settings),
            outage_key("osc-fr1", shard),
            cursor_key(shard),
            bearer_blob_key(shard),
        }
        assert discovery_key(settings) == f"__discovery__/{shard}/osc-fr1,osc-secnum-fr1"
        assert cursor_key(shard) == f"__cursor__/{shard}/check"
        assert bearer_blob_key(shard) == f"__tokens__/{shard}/bearer"
        assert len(keys[shard]) == 6
    single = Settings.from_env({"SCALINGO_API_TOKEN": "tk-us-x", "SCALINGO_REGIONS": "osc-fr1,osc-secnum-fr1"})
    unsharded = {discovery_key(single), report_key(single), unreadable_key(single), outage_key("osc-fr1")}
    unsharded |= {CURSOR_KEY, bearer_blob_key()}
    assert not keys[acme.shard] & keys[globex.shard]
    assert not (keys[acme.shard] | keys[globex.shard]) & unsharded
    # A database is one record, one addon token, whichever account sees it (addon ids are global).
    assert token_keys(["osc-fr1/ad-1"], acme.shard)[1:] == token_keys(["osc-fr1/ad-1"], globex.shard)[1:]


def test_a_store_is_opened_for_the_settings_shard(tmp_path: Path) -> None:
    acme = sharded(STATE_PATH=str(tmp_path / "s.sqlite3")).for_shard(ACME)
    assert shard_of(build_store(acme)) == acme.shard
    assert shard_of(build_store(sharded(STATE_PATH=str(tmp_path / "s.sqlite3")))) == ""
    assert shard_of(object()) == ""  # type: ignore[arg-type]  # a store without the attribute: no shard


def test_a_check_refuses_a_store_of_another_shard(tmp_path: Path) -> None:
    acme = sharded(STATE_PATH=str(tmp_path / "s.sqlite3")).for_shard(ACME).with_secrets("tk-us-acme", None, None)
    scalingo = ScalingoClient.from_settings(acme)
    for store, ok in ((build_store(acme), True), (SqliteStateStore(tmp_path / "s.sqlite3"), False)):
        clients = Clients(scalingo, store, ConsoleNotifier())
        if ok:
            Run(acme, clients, NOW_DT, "check-1", False, ClaimClock(0.0, time.monotonic(), None))
        else:
            with pytest.raises(ValueError, match="opened for shard ''"):
                Run(acme, clients, NOW_DT, "check-1", False, ClaimClock(0.0, time.monotonic(), None))


# -- the cursor and the tokens of a shard ------------------------------------------------------------------------


def test_each_shard_reads_and_writes_its_own_cursor(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    acme, globex = (SqliteStateStore(path, shard=shard_id(name)) for name in (ACME, GLOBEX))
    assert save_cursor_if_changed(acme, [], ["osc-fr1/ad-1", "osc-fr1/ad-2"], time.time())
    assert save_cursor_if_changed(globex, [], ["osc-fr1/ad-9"], time.time())
    blobs = acme.load_blobs([cursor_key(acme.shard)])
    assert left_keys(blobs) == left_keys(blobs, cursor_key(acme.shard)) == ["osc-fr1/ad-1", "osc-fr1/ad-2"]
    assert left_keys(globex.load_blobs([cursor_key(globex.shard)])) == ["osc-fr1/ad-9"]
    assert SqliteStateStore(path).load_blobs([CURSOR_KEY]) == {}  # the single token's cursor: untouched


def test_a_shards_cursor_in_chunks_reads_back_whole(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "s.sqlite3", shard=shard_id(ACME))
    left = [f"osc-fr1/ad-{i:06d}-{'x' * 20}" for i in range(4000)]  # far beyond one part
    assert save_cursor_if_changed(store, [], left, time.time())
    blobs = store.load_blobs([cursor_key(store.shard)])
    parts = cursor_part_keys(blobs)
    assert parts
    assert all(k.startswith(cursor_key(store.shard) + "/part/") for k in parts)
    blobs.update(store.load_blobs(parts))
    assert left_keys(blobs) == left


def token(key: str, value: str) -> CachedToken:
    return CachedToken(key, value, NOW + 3600, NOW + 3000)


def sealed_blob(sealer: TokenSealer, key: str, value: str) -> Blob:
    plain = json.dumps({"token": value, "expires_at": NOW + 3600, "renew_at": NOW + 3000})
    return Blob(key, sealer.seal(key, plain), NOW + 3600)


def test_a_shard_never_restores_another_shards_bearer_nor_opens_its_addon_tokens() -> None:
    acme, globex = shard_id(ACME), shard_id(GLOBEX)
    acme_sealer, globex_sealer = TokenSealer("tk-us-acme"), TokenSealer("tk-us-globex")
    addon = TOKEN_KEY_PREFIX + addon_key("osc-fr1/ad-shared")
    blobs = [
        sealed_blob(acme_sealer, bearer_blob_key(acme), "bearer-of-acme"),
        sealed_blob(globex_sealer, bearer_blob_key(globex), "bearer-of-globex"),
        sealed_blob(globex_sealer, bearer_blob_key(), "bearer-of-the-single-token"),
        sealed_blob(globex_sealer, addon, "addon-token-via-globex"),  # a database both accounts see
    ]
    cache = TokenCache(clock=lambda: NOW)
    assert restore_tokens(blobs, cache, acme_sealer, acme) == 1  # its own bearer only; the rest ignored, no error
    assert cache.get(BEARER_KEY, lambda: "fetched") == "bearer-of-acme"
    assert cache.get(addon_key("osc-fr1/ad-shared"), lambda: "fetched-again") == "fetched-again"
    # Even a copy of another shard's bearer under this shard's key does not open (other API token, other key).
    moved = Blob(bearer_blob_key(acme), blobs[1].data, NOW + 3600)
    assert restore_tokens([moved], TokenCache(clock=lambda: NOW), acme_sealer, acme) == 0
    # The single token's bearer is not a shard's either (a stack that gained shards starts afresh).
    assert restore_tokens(blobs[2:3], TokenCache(clock=lambda: NOW), globex_sealer, globex) == 0


def test_a_shard_saves_its_bearer_under_its_own_key(tmp_path: Path) -> None:
    acme = shard_id(ACME)
    store = SqliteStateStore(tmp_path / "s.sqlite3", shard=acme)
    cache = TokenCache(clock=time.time)
    cache.get(BEARER_KEY, lambda: "bearer-of-acme")
    cache.get(addon_key("osc-fr1/ad-1"), lambda: "addon-1")
    sealer = TokenSealer("tk-us-acme")
    assert save_tokens(store, cache, sealer, acme) == 2
    keys = [bearer_blob_key(acme), bearer_blob_key(), TOKEN_KEY_PREFIX + addon_key("osc-fr1/ad-1")]
    assert set(store.load_blobs(keys)) == {keys[0], keys[2]}
    fresh = TokenCache(clock=time.time)
    assert restore_tokens(store.load_blobs(token_keys(["osc-fr1/ad-1"], acme)).values(), fresh, sealer, acme) == 2
    assert fresh.is_fresh(BEARER_KEY)
