"""API keys: Bearer auth on /v1 once any key exists; each route states the scope it needs.

Keys live hashed in the database (`supportbot keys create NAME --scope customer|agent|admin`),
and optionally in the settings' api_keys_file: lines `name:scope:sha256-of-key` (never the
key itself; the old scope "normal" reads as "agent"). Every call resolves to a
`bot.callers.Caller`; while no key exists that is `OPEN` (the server then listens on
loopback only).
"""

from __future__ import annotations

import hmac
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from bot.api.deps import RuntimeDep, SessionDep
from bot.callers import OPEN, Caller, scope_of
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
            try:
                out.append((name, scope_of(scope or "customer"), digest))
            except ValueError:
                continue  # an unknown scope grants nothing
    return out


def auth_required(runtime, session: Session) -> bool:
    return bool(file_keys(runtime.settings.api_keys_file)) or api_keys.any_active_api_key(session)


def _caller_of(key: str, runtime, session: Session) -> Caller | None:
    digest = api_keys.hash_key(key)
    for name, scope, stored in file_keys(runtime.settings.api_keys_file):
        if hmac.compare_digest(digest, stored):
            return Caller(scope, f"keyfile:{name}", name)
    row = api_keys.verify_api_key(session, key=key)
    return Caller(scope_of(row.scope), f"key:{row.id}", row.name) if row is not None else None


def current_caller(request: Request, runtime: RuntimeDep, session: SessionDep) -> Caller:
    """`OPEN` when no keys exist, else the caller of the presented key (401 without one)."""
    caller = _authenticate(request, runtime, session)
    # End the lookup's transaction here (committing last_used_at): else the request would hold
    # a pooled connection until it ends (and, once last_used_at is written, SQLite's write
    # lock) while a turn opens sessions of its own. 64 concurrent streamed turns exhausted
    # the pool that way (scripts/bench_load.py).
    session.commit()
    return caller


def _authenticate(request: Request, runtime, session: Session) -> Caller:
    if not auth_required(runtime, session):
        _rate_limit(request, "client:" + (request.client.host if request.client else "unknown"))
        return OPEN
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthError(401, "missing API key: send 'Authorization: Bearer KEY' (create one with 'supportbot keys create NAME')")
    caller = _caller_of(key.strip(), runtime, session)
    if caller is None:
        raise AuthError(401, "invalid or revoked API key")
    _rate_limit(request, "key:" + api_keys.hash_key(key.strip()))  # the hash, never the key itself
    return caller


def _rate_limit(request: Request, caller: str) -> None:
    limiter = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        limiter.hit(caller)  # RateLimitedError -> 429 with Retry-After


def require_agent(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
    if not caller.is_staff:
        raise AuthError(403, "this call needs an agent or admin key ('supportbot keys create NAME --scope agent')")
    return caller


def require_admin(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
    if not caller.is_admin:
        raise AuthError(403, "this call needs an admin key ('supportbot keys create NAME --scope admin')")
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]  # any valid key: customer, agent or admin
AgentDep = Annotated[Caller, Depends(require_agent)]
AdminDep = Annotated[Caller, Depends(require_admin)]
