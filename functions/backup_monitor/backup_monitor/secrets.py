"""Secrets from SSM Parameter Store: cached a few minutes, re-read at once when a service refuses them.

Powertools' parameters utility does the caching (`max_age`) and the forced re-read (`force_fetch`); the SSM
client has timeouts. Errors name the parameter and SSM's (or KMS's) reason, never a value.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from backup_monitor.config import ConfigError
from backup_monitor.extras import needs_aws

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SSMProvider

SECRET_MAX_AGE_SECONDS = 300  # a rotated secret is picked up by a warm container within this
FORCED_READ_INTERVAL_SECONDS = 30.0  # a refused secret is re-read at most this often
SSM_TIMEOUT_SECONDS = 10.0


def describe(exc: BaseException) -> str:
    """Why a read failed: SSM's error code and message (e.g. ParameterNotFound, AccessDeniedException naming
    kms:Decrypt), or the exception's type. Never a parameter's value: SSM does not echo values."""
    cause = exc.__cause__ or exc.__context__ or exc
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        code = str(error.get("Code") or "error")
        message = " ".join(str(error.get("Message") or "").split())[:240]
        return f"{code}: {message}" if message else code
    text = " ".join(str(cause).split())[:240]
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


class SecretReader:
    """Reads SecureString parameters, cached for `max_age` seconds; `read(..., force=True)` asks SSM again,
    at most once every FORCED_READ_INTERVAL_SECONDS per parameter (a refused secret may stay refused)."""

    def __init__(
        self,
        max_age: int = SECRET_MAX_AGE_SECONDS,
        *,
        forced_interval: float = FORCED_READ_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_age = max_age
        self._forced_interval = forced_interval
        self._clock = clock
        self._forced_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._provider: SSMProvider | None = None

    def __repr__(self) -> str:
        return f"SecretReader(max_age={self._max_age})"

    def read(self, name: str, variable: str, *, force: bool = False) -> str:
        """The parameter's decrypted value; ConfigError(variable, ...) naming the cause when it cannot be read."""
        with needs_aws(variable, f"reading SSM parameter {name!r}"):
            from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        with self._lock:
            if force:
                now = self._clock()
                last = self._forced_at.get(name)
                force = last is None or now - last >= self._forced_interval
                if force:
                    self._forced_at[name] = now
            with needs_aws(variable, f"reading SSM parameter {name!r}"):
                provider = self._ssm()
        try:
            value: Any = provider.get(name, max_age=self._max_age, decrypt=True, force_fetch=force)
        except GetParameterError as exc:
            raise ConfigError(variable, f"cannot read SSM parameter {name!r} ({describe(exc)})") from None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(variable, f"SSM parameter {name!r} is empty")
        return value.strip()

    def _ssm(self) -> SSMProvider:
        if self._provider is None:
            from aws_lambda_powertools.utilities.parameters import SSMProvider
            from botocore.config import Config

            config = Config(
                connect_timeout=5,
                read_timeout=SSM_TIMEOUT_SECONDS,
                retries={"max_attempts": 3, "mode": "standard"},
            )
            self._provider = SSMProvider(boto_config=config)
        return self._provider
