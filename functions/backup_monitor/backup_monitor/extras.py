"""The `aws` extra: boto3 (with botocore) and Powertools, installed by `pip install 'scalingo-backup-monitor[aws]'`.

The command with a SQLite state file needs neither, and never imports them. A setting that needs them
(STATE_TABLE, a *_PARAMETER naming an SSM parameter) without the extra is a ConfigError naming that setting
and the install command, found at start like any bad setting, not an ImportError.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from backup_monitor.config import ConfigError

AWS_EXTRA = "pip install 'scalingo-backup-monitor[aws]'"
AWS_MODULES = frozenset({"boto3", "botocore", "aws_lambda_powertools", "s3transfer", "jmespath"})


@contextmanager
def needs_aws(variable: str, purpose: str) -> Iterator[None]:
    """Imports of the `aws` extra's modules inside this block: one that is not installed is a ConfigError for
    `variable` (what needs it: `purpose`); any other import error goes on as it is."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in AWS_MODULES:
            raise
        problem = f"{purpose} needs the aws extra ({exc.name} is not installed): {AWS_EXTRA}"
        raise ConfigError(variable, problem) from None
