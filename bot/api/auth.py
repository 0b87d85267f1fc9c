"""API keys: Bearer auth on /v1 once any key exists; admin scope for admin calls.

Keys live hashed in the database (`supportbot keys create`), and optionally in the
settings' api_keys_file: lines `name:scope:sha256-of-key` (never the key itself).
"""

from __future__ import annotations

import hmac
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from bot.api.deps import RuntimeDep, SessionDep
from storage.repositories import api_keys


class AuthError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def file_keys(path: Path | None) -> list[tuple[str, str, str]]:
    """(name, scope, sha256) per line; re-read only when the file changes."""
    if path is None or not path.is_file():
        return []
    return _parse_keys_file(path, path.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _parse_keys_file(path: Path, _mtime_ns: int) -> list[tuple[str, str, str]]:
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, scope, digest = (line.split(":", 2) + ["", ""])[:3]
            out.append((name, scope or "normal", digest))
    return out


def auth_required(runtime, session: Session) -> bool:
    return bool(file_keys(runtime.settings.api_keys_file)) or api_keys.any_active_api_key(session)


def _scope_of(key: str, runtime, session: Session) -> str | None:
    digest = api_keys.hash_key(key)
    for _name, scope, stored in file_keys(runtime.settings.api_keys_file):
        if hmac.compare_digest(digest, stored):
            return scope
    row = api_keys.verify_api_key(session, key=key)
    return row.scope if row is not None else None


def caller_scope(request: Request, runtime: RuntimeDep, session: SessionDep) -> str:
    """'open' when no keys exist, else the scope of the presented key (401 without one)."""
    scope = _authenticate(request, runtime, session)
    # End the lookup's transaction here (committing last_used_at): else the request would hold
    # a pooled connection until it ends (and, once last_used_at is written, SQLite's write
    # lock) while a turn opens sessions of its own. 64 concurrent streamed turns exhausted
    # the pool that way (scripts/bench_load.py).
    session.commit()
    return scope


def _authenticate(request: Request, runtime, session: Session) -> str:
    if not auth_required(runtime, session):
        _rate_limit(request, "client:" + (request.client.host if request.client else "unknown"))
        return "open"
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthError(401, "missing API key: send 'Authorization: Bearer KEY' (create one with 'supportbot keys create NAME')")
    scope = _scope_of(key.strip(), runtime, session)
    if scope is None:
        raise AuthError(401, "invalid or revoked API key")
    _rate_limit(request, "key:" + api_keys.hash_key(key.strip()))  # the hash, never the key itself
    return scope


def _rate_limit(request: Request, caller: str) -> None:
    limiter = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        limiter.hit(caller)  # RateLimitedError -> 429 with Retry-After


def require_admin(scope: Annotated[str, Depends(caller_scope)]) -> str:
    if scope not in ("admin", "open"):
        raise AuthError(403, "this call needs an admin key ('supportbot keys create NAME --admin')")
    return scope


ScopeDep = Annotated[str, Depends(caller_scope)]
AdminDep = Annotated[str, Depends(require_admin)]
