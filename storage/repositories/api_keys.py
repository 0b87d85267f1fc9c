"""API keys. Only a sha256 hash of each key is stored; the plaintext is shown once.

A key looks like `sb_` + 43 url-safe characters (256 random bits). Its first
`PREFIX_CHARS` characters are kept in clear as `prefix`, to show in listings and to
find the candidate rows; the hash is then compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.errors import InputError
from storage.models import API_KEY_SCOPES, ApiKey, utcnow

KEY_PREFIX = "sb_"
PREFIX_CHARS = 10  # "sb_" + 7 random characters
# The prefix of keys imported from an old api_keys_file (only their hash was known):
# their callers keep the owner "keyfile:<name>" their conversations were stored under.
FILE_KEY_PREFIX = "keyfile"
# last_used_at is written at most this often per key, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class DuplicateApiKeyName(InputError):
    """An API key with this name exists already."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, *, name: str, scope: str = "customer") -> tuple[ApiKey, str]:
    """A new key: returns (row, plaintext). The plaintext is not stored anywhere; show it
    to the user once. Raises DuplicateApiKeyName if `name` is taken (revoked keys too)."""
    if scope not in API_KEY_SCOPES:
        raise ValueError(f"scope must be one of {', '.join(API_KEY_SCOPES)}; got {scope!r}")
    if not name.strip():
        raise InputError("an API key needs a name, e.g. 'supportbot keys create ci'")
    if get_api_key(session, name=name) is not None:
        raise DuplicateApiKeyName(
            f"an API key named {name!r} exists already; choose another name"
        )
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        name=name, key_hash=hash_key(plaintext), prefix=plaintext[:PREFIX_CHARS], scope=scope
    )
    session.add(row)
    session.flush()
    return row, plaintext


def get_api_key(session: Session, *, name: str) -> ApiKey | None:
    return session.scalar(sa.select(ApiKey).where(ApiKey.name == name))


def list_api_keys(session: Session, *, include_revoked: bool = False) -> list[ApiKey]:
    query = sa.select(ApiKey)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(query.order_by(ApiKey.created_at, ApiKey.name)))


def verify_api_key(session: Session, *, key: str) -> ApiKey | None:
    """The active key matching `key`, or None (unknown, malformed or revoked).

    Records `last_used_at` (at most once a minute per key); the caller commits.
    """
    if not key:
        return None
    digest = hash_key(key)
    # By the hash (unique, indexed): keys made here and keys imported from a file alike.
    candidates = session.scalars(
        sa.select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
    )
    match = None
    for candidate in candidates:
        if hmac.compare_digest(candidate.key_hash, digest):
            match = candidate
    if match is None:
        return None
    now = utcnow()
    if match.last_used_at is None or now - match.last_used_at >= LAST_USED_RESOLUTION:
        match.last_used_at = now
        session.flush()
    return match


def revoke_api_key(session: Session, *, name: str) -> ApiKey | None:
    """Revoke a key by name (revoking twice keeps the first time). None if not found."""
    row = get_api_key(session, name=name)
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row


def any_active_api_key(session: Session) -> bool:
    """Whether at least one unrevoked key exists (then every /v1 call needs one)."""
    return bool(session.scalar(sa.select(sa.exists().where(ApiKey.revoked_at.is_(None)))))


def import_keys_file(session: Session, path: Path | None) -> int:
    """Import the keys of an old `name:scope:sha256` file (settings.api_keys_file) whose
    name is not in the table yet; returns how many. A key revoked here stays revoked (its
    name exists). The caller commits."""
    if path is None or not path.is_file():
        return 0
    n = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, scope, digest = (line.split(":", 2) + ["", ""])[:3]
        scope = "agent" if scope == "normal" else (scope or "customer")
        if scope not in API_KEY_SCOPES or len(digest) != 64 or not name:
            continue  # an unknown scope grants nothing, as before
        if get_api_key(session, name=name) is not None or session.scalar(
                sa.select(ApiKey.id).where(ApiKey.key_hash == digest)) is not None:
            continue
        session.add(ApiKey(name=name, key_hash=digest.lower(), prefix=FILE_KEY_PREFIX, scope=scope))
        n += 1
    session.flush()
    return n
