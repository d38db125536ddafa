"""Shared fixtures: the fake Scalingo API on loopback, a fixed clock, settings for the fakes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backup_monitor.config import Settings
from tests.fakes import FakeScalingo
from tests.support import dynamodb_local

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
INTEGRATION = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration is marked `integration` (real servers on loopback, subprocesses):
    `-m integration` runs those alone, `-m "not integration"` the unit tests."""
    for item in items:
        if item.path.is_relative_to(INTEGRATION):
            item.add_marker(pytest.mark.integration)


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
        "DAILY_REPORT_AT": "",
        # Every database read at every check: these tests are about what one read finds. The cadence has its
        # own (tests/unit/test_cadence.py, test_fleet_scale.py, and test_month.py with the default).
        "SWEEP_EVERY_HOURS": "0",
        **overrides,
    }
    return Settings.from_env(env)


@pytest.fixture(scope="session")
def dynamodb_endpoint() -> Iterator[str]:
    """DynamoDB Local for the whole session; boto3 finds it through AWS_ENDPOINT_URL_DYNAMODB."""
    local = dynamodb_local.start()
    saved = {k: os.environ.get(k) for k in dynamodb_local.aws_test_env(local.endpoint)}
    os.environ.update(dynamodb_local.aws_test_env(local.endpoint))
    try:
        yield local.endpoint
    finally:
        local.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def dynamodb_table(dynamodb_endpoint: str) -> str:
    """A fresh table built from template.yaml's definition."""
    name = f"state-{uuid.uuid4().hex[:10]}"
    dynamodb_local.create_table(dynamodb_endpoint, name)
    return name
