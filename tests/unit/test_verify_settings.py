"""The two verification settings: defaults and ranges, each problem naming its variable."""

from __future__ import annotations

import pytest

from backup_monitor.config import ConfigError, Settings

BASE = {"SCALINGO_API_TOKEN": "tk-us-test"}


def test_defaults_verify_weekly_up_to_five_gigabytes() -> None:
    settings = Settings.from_env(BASE)
    assert (settings.verify_archives_every_days, settings.verify_max_gb) == (7.0, 5.0)


def test_zero_days_switches_verification_off() -> None:
    assert Settings.from_env({**BASE, "VERIFY_ARCHIVES_EVERY_DAYS": "0"}).verify_archives_every_days == 0


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("VERIFY_ARCHIVES_EVERY_DAYS", "-1", "at least 0"),
        ("VERIFY_ARCHIVES_EVERY_DAYS", "400", "at most 366"),
        ("VERIFY_ARCHIVES_EVERY_DAYS", "weekly", "must be a number"),
        ("VERIFY_MAX_GB", "0", "at least 0.001"),
        ("VERIFY_MAX_GB", "5000", "at most 1000"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**BASE, name: value})
    assert caught.value.variable == name
    assert problem in caught.value.problem
