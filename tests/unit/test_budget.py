"""The time budget and the order of a check; the token cache's renewal margins."""

from __future__ import annotations

import random

import pytest

from backup_monitor.budget import (
    LAMBDA_SAFETY_MARGIN_SECONDS,
    cursor_blob,
    left_keys,
    order_for_check,
    split_lanes,
    time_budget,
)
from backup_monitor.config import ConfigError, Settings, Target
from backup_monitor.scalingo.errors import OutOfTimeError
from backup_monitor.scalingo.tokens import RENEW_MARGIN_SECONDS, CachedToken, TokenCache
from tests.fakes import make_jwt


@pytest.mark.parametrize(
    ("limit", "remaining", "expected"),
    [
        (None, None, None),
        (300.0, None, 300.0),
        (None, 900.0, 900.0 - LAMBDA_SAFETY_MARGIN_SECONDS),
        (300.0, 900.0, 300.0),
        (3000.0, 900.0, 900.0 - LAMBDA_SAFETY_MARGIN_SECONDS),
        (None, 10.0, 0.0),
    ],
)
def test_the_smaller_budget_wins(limit: float | None, remaining: float | None, expected: float | None) -> None:
    assert time_budget(limit, remaining) == expected


def test_check_time_limit_is_read_and_validated() -> None:
    base = {"SCALINGO_API_TOKEN": "tk-us-x"}
    assert Settings.from_env(base).check_time_limit is None
    assert Settings.from_env(base).api_rate_limit == 40
    assert Settings.from_env({**base, "CHECK_TIME_LIMIT_SECONDS": "600"}).check_time_limit == 600.0
    with pytest.raises(ConfigError, match="CHECK_TIME_LIMIT_SECONDS"):
        Settings.from_env({**base, "CHECK_TIME_LIMIT_SECONDS": "0"})


def test_cached_tokens_first_then_the_databases_left_last_time() -> None:
    targets = [Target("osc-fr1", f"app{i}", f"ad-{i}") for i in range(6)]
    cached = {"osc-fr1/ad-1", "osc-fr1/ad-4"}
    left = ["osc-fr1/ad-5", "osc-fr1/ad-4", "osc-fr1/ad-9"]
    ordered = order_for_check(targets, left, lambda t: t.key not in cached)
    assert [t.app for t in ordered] == ["app4", "app1", "app5", "app0", "app2", "app3"]


def test_the_cursor_round_trips_and_tolerates_damage() -> None:
    blob = cursor_blob(["a/b/c", "d/e/f"], 1000.0)
    assert left_keys({blob.key: blob}) == ["a/b/c", "d/e/f"]
    assert left_keys({}) == []
    broken = cursor_blob([], 0.0).__class__(blob.key, "{not json", 0.0)
    assert left_keys({blob.key: broken}) == []


def test_renewal_margins_are_spread_within_their_bounds() -> None:
    now = 1_000_000.0
    cache = TokenCache(clock=lambda: now, rng=random.Random(7))
    token = make_jwt({"exp": int(now + 3600)})
    for i in range(200):
        cache.get(f"addon/{i}", lambda: token)
    margins = [t.expires_at - t.renew_at for t in cache.drain_new()]
    low, high = RENEW_MARGIN_SECONDS
    assert all(low <= m <= high for m in margins)
    assert max(margins) - min(margins) > (high - low) / 2  # spread, not one value
    assert cache.drain_new() == []  # drained: only new tokens are written


def test_restored_tokens_are_used_without_fetching_and_not_written_again() -> None:
    now = 1_000_000.0
    cache = TokenCache(clock=lambda: now)
    cache.restore([CachedToken("bearer", "stored", now + 3000, now + 2000), CachedToken("old", "x", now + 60, now - 1)])
    assert cache.get("bearer", lambda: pytest.fail("fetched")) == "stored"
    assert cache.is_fresh("bearer")
    assert not cache.is_fresh("old")
    assert cache.drain_new() == []


def test_databases_needing_a_token_get_half_the_workers_alongside_the_others() -> None:
    assert split_lanes(["r1", "r2"], ["d1"], 8) == [(["r1", "r2"], 4), (["d1"], 4)]
    assert split_lanes(["r1", "r2"], ["d1"], 3) == [(["r1", "r2"], 2), (["d1"], 1)]
    assert split_lanes(["r1"], ["d1"], 2) == [(["r1"], 1), (["d1"], 1)]
    assert split_lanes(["r1"], ["d1"], 1) == [(["r1", "d1"], 1)]
    assert split_lanes([], ["d1", "d2"], 8) == [(["d1", "d2"], 8)]


def test_out_of_time_a_due_token_that_has_not_expired_serves_once_more() -> None:
    clock = [1_000_000.0]
    cache = TokenCache(clock=lambda: clock[0], rng=random.Random(1))
    cache.get("addon/a", lambda: make_jwt({"exp": int(clock[0] + 3600)}))
    token = cache.drain_new()[0]
    clock[0] = token.renew_at + 1  # due, still valid for minutes

    def out_of_time() -> str:
        raise OutOfTimeError("the check's time budget is spent")

    assert cache.get("addon/a", out_of_time) == token.value
    clock[0] = token.expires_at - 30  # about to expire: not worth it
    with pytest.raises(OutOfTimeError):
        cache.get("addon/a", out_of_time)
    with pytest.raises(OutOfTimeError):
        cache.get("addon/none", out_of_time)


def test_among_databases_needing_a_token_the_soonest_expiry_goes_first() -> None:
    targets = [Target("osc-fr1", f"app{i}", f"ad-{i}") for i in range(4)]
    expiry = {"osc-fr1/ad-0": 900.0, "osc-fr1/ad-1": 0.0, "osc-fr1/ad-2": 300.0}
    ordered = order_for_check(targets, ["osc-fr1/ad-3"], lambda t: True, lambda t: expiry.get(t.key, 0.0))
    assert [t.app for t in ordered] == ["app3", "app1", "app2", "app0"]
