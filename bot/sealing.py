"""Texts kept before PII redaction, sealed at rest.

An operator may opt in to keep what a customer wrote before redaction
(SUPPORTBOT_PII_KEEP_ORIGINAL). Those originals are stored encrypted and authenticated
with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under a key from the
settings (SUPPORTBOT_PII_ORIGINAL_KEY), never in clear: a copy of the database alone
does not reveal them. They live in the rows of their conversation and are erased with it.

Make a key with:
    python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"
"""

from __future__ import annotations

from core.errors import SupportbotError


class SealingError(SupportbotError):
    """A sealed text that this key cannot open (another key, or tampered with)."""


class Sealer:
    PREFIX = "fernet:"  # marks a sealed value in the database

    def __init__(self, key: str | bytes):
        from cryptography.fernet import Fernet

        try:
            self._fernet = Fernet(key.encode() if isinstance(key, str) else key)
        except (ValueError, TypeError) as exc:
            raise SupportbotError("SUPPORTBOT_PII_ORIGINAL_KEY is not a Fernet key (32 url-safe base64 bytes): make "
                                  "one with python -c \"from cryptography.fernet import Fernet; "
                                  "print(Fernet.generate_key().decode())\"") from exc

    def seal(self, text: str | None) -> str | None:
        if text is None:
            return None
        return self.PREFIX + self._fernet.encrypt(text.encode()).decode()

    def unseal(self, value: str | None) -> str | None:
        from cryptography.fernet import InvalidToken

        if value is None:
            return None
        if not value.startswith(self.PREFIX):
            raise SealingError("this value is not sealed")
        try:
            return self._fernet.decrypt(value[len(self.PREFIX):].encode()).decode()
        except InvalidToken as exc:
            raise SealingError("cannot open a sealed original with this key (another key, or altered)") from exc
