"""Sealed tokens: bound to the API token and to their record key, a new nonce each time."""

from __future__ import annotations

from backup_monitor.sealing import TokenSealer

API_TOKEN = "tk-us-unit-test-api-token"
SECRET = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.addon-token-secret-part"


def test_a_sealed_token_opens_with_the_same_api_token_and_key() -> None:
    sealed = TokenSealer(API_TOKEN).seal("__tokens__/addon/a", SECRET)
    assert TokenSealer(API_TOKEN).open("__tokens__/addon/a", sealed) == SECRET


def test_the_sealed_form_shows_nothing_of_the_token() -> None:
    sealed = TokenSealer(API_TOKEN).seal("__tokens__/bearer", SECRET)
    assert "secret-part" not in sealed
    assert SECRET[:20] not in sealed
    assert sealed.startswith("v1.")


def test_each_seal_uses_a_new_nonce() -> None:
    sealer = TokenSealer(API_TOKEN)
    assert sealer.seal("k", SECRET) != sealer.seal("k", SECRET)


def test_a_value_moved_to_another_record_does_not_open() -> None:
    sealer = TokenSealer(API_TOKEN)
    sealed = sealer.seal("__tokens__/addon/osc-fr1/shop/ad-1", SECRET)
    assert sealer.open("__tokens__/addon/osc-fr1/blog/ad-2", sealed) is None


def test_another_api_token_cannot_open_it() -> None:
    sealed = TokenSealer(API_TOKEN).seal("k", SECRET)
    assert TokenSealer("tk-us-rotated-token").open("k", sealed) is None


def test_damaged_values_do_not_open() -> None:
    sealer = TokenSealer(API_TOKEN)
    sealed = sealer.seal("k", SECRET)
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    for damaged in (flipped, "v1.", "v1.!!!", "v2." + sealed[3:], "garbage", "v1.AAAA"):
        assert sealer.open("k", damaged) is None


def test_the_sealer_never_shows_its_key() -> None:
    assert API_TOKEN not in repr(TokenSealer(API_TOKEN))
