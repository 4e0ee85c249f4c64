"""Secrets a service must read back (HMAC keys it signs or verifies with, channel tokens it sends), stored
encrypted: Fernet (AES-128-CBC with HMAC-SHA256) under a comma-separated list of keys whose first encrypts and
all of which decrypt, so the encryption key itself can be rotated (put a new key first, re-encrypt, drop the
old one). The one mechanism for such secrets: intake's webhook secrets and reporting's notification channel
secrets both use it. Secrets are never logged.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretsNotConfigured(RuntimeError):
    """No encryption keys: secrets cannot be stored or read."""


class SecretCipher:
    def __init__(self, keys: str | None, setting: str = "the secret encryption keys") -> None:
        """`keys`: comma-separated Fernet keys, the first encrypts; `setting`: the variable that holds them,
        named in the error when they are missing."""
        parts = [part.strip() for part in (keys or "").split(",") if part.strip()]
        self._fernet = MultiFernet([Fernet(part) for part in parts]) if parts else None
        self._setting = setting

    @property
    def configured(self) -> bool:
        return self._fernet is not None

    def _ready(self) -> MultiFernet:
        if self._fernet is None:
            raise SecretsNotConfigured(f"{self._setting} is not set: secrets cannot be stored")
        return self._fernet

    def encrypt(self, secret: str) -> bytes:
        return self._ready().encrypt(secret.encode())

    def decrypt(self, ciphertext: bytes) -> bytes | None:
        """None when the secret cannot be read (no keys configured, or encrypted under a key no longer
        configured): whatever needs it is then refused, never let through."""
        if self._fernet is None:
            return None
        try:
            return self._fernet.decrypt(ciphertext)
        except InvalidToken:
            return None

    def reencrypt(self, ciphertext: bytes) -> bytes:
        return self._ready().rotate(ciphertext)
