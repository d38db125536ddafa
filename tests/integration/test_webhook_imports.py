"""A check that posts through an incoming webhook imports no slack-sdk: its package imports the bot's WebClient
(and asyncio), about 80 ms of a Lambda's cold start that the webhook path does not need."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from backup_monitor.demo import seed
from tests.fakes import FakeScalingo
from tests.fakes.slack import FakeSlack
from tests.support import processes

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(microsecond=0)

# The real command's main() in a fresh interpreter, then which slack_sdk modules it loaded.
PROBE = """
import json, sys
from backup_monitor.cli import main
code = main(["check"])
print(json.dumps({"code": code, "slack": sorted(m for m in sys.modules if m.split(".")[0] == "slack_sdk")}))
"""


def run_probe(fake: FakeScalingo, state: Path, **slack_env: str) -> dict[str, object]:
    env = processes.command_env(fake, state, **slack_env)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, cwd=ROOT, timeout=120, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_webhook_check_imports_no_slack_sdk(fake_scalingo: FakeScalingo, tmp_path: Path) -> None:
    seed(fake_scalingo, NOW)
    with FakeSlack() as slack:
        result = run_probe(fake_scalingo, tmp_path / "state.sqlite3", SLACK_WEBHOOK_URL=slack.webhook_url)
        delivered = slack.messages()
    assert result["code"] == 0
    assert len(delivered) >= 8, "the findings went to the webhook"
    assert result["slack"] == []


def test_a_bot_check_still_imports_the_web_client(fake_scalingo: FakeScalingo, tmp_path: Path) -> None:
    seed(fake_scalingo, NOW)
    with FakeSlack() as slack:
        result = run_probe(
            fake_scalingo,
            tmp_path / "state.sqlite3",
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_CHANNEL="#alerts",
            SLACK_API_URL=slack.api_url,
        )
        delivered = slack.messages()
    assert result["code"] == 0
    assert len(delivered) >= 8
    assert "slack_sdk.web.client" in result["slack"]  # type: ignore[operator]
