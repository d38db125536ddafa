"""Sealing of the short-lived Scalingo tokens kept in the state store.

The key is derived from the Scalingo API token (HKDF-SHA256), each value is sealed with AES-GCM under a fresh
nonce, and the record key is the associated data: the state table alone yields no usable token, and a sealed
value copied onto another record does not open.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FORMAT = "v1"
NONCE_BYTES = 12
_SALT = b"scalingo-backup-monitor/token-store"
_INFO = b"aes-256-gcm key for sealed Scalingo tokens, v1"


class TokenSealer:
    """Seals and opens token values bound to their record key; the key never leaves this object."""

    def __init__(self, api_token: str) -> None:
        if not api_token:
            raise ValueError("an API token is needed to derive the sealing key")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(api_token.encode())
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "TokenSealer(<key hidden>)"

    def seal(self, record_key: str, value: str) -> str:
        """`value` encrypted for `record_key` only: ``v1.<base64url(nonce || ciphertext || tag)>``."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode(), record_key.encode())
        return f"{FORMAT}.{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"

    def open(self, record_key: str, sealed: str) -> str | None:
        """The value sealed for `record_key`, or None when it was sealed for another key, with another API
        token, or is damaged (the caller then fetches a new token)."""
        prefix, _, body = sealed.partition(".")
        if prefix != FORMAT or not body:
            return None
        try:
            raw = base64.urlsafe_b64decode(body.encode("ascii"))
        except (ValueError, UnicodeError):
            return None
        if len(raw) <= NONCE_BYTES:
            return None
        try:
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], record_key.encode())
        except InvalidTag:
            return None
        try:
            return plain.decode()
        except UnicodeDecodeError:
            return None
