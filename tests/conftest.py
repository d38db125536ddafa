"""Shared fixtures: the fake Scalingo API on loopback, a fixed clock, settings for the fakes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from backup_monitor.config import Settings
from tests.fakes import FakeScalingo

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@pytest.fixture
def fake_scalingo() -> Iterator[FakeScalingo]:
    with FakeScalingo() as fake:
        yield fake


def settings_for(fake: FakeScalingo, **overrides: str) -> Settings:
    """Settings pointing every Scalingo URL at the fake, with a fast rate limit."""
    env = {
        "SCALINGO_API_TOKEN": fake.api_token,
        "SCALINGO_AUTH_URL": fake.url,
        "SCALINGO_API_URL": fake.region_url(),
        "SCALINGO_DB_API_URL": fake.region_url(),
        "SCALINGO_API_RATE_LIMIT": "6000",
        **overrides,
    }
    return Settings.from_env(env)
