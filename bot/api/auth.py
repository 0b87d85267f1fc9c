"""API keys: Bearer auth on /v1 once any key exists; each route states the scope it needs.

Keys live hashed in the database (`supportbot keys create NAME --scope customer|agent|admin`),
shared by every worker and host. The settings' api_keys_file (lines `name:scope:sha256-of-key`,
never the key itself; the old scope "normal" reads as "agent") is imported into it on start
(bot.runtime.Runtime.import_local_files); its keys keep the owner `keyfile:<name>`. Every call resolves to a
`bot.callers.Caller`; while no key exists that is `OPEN` (the server then listens on
loopback only).
"""

from __future__ import annotations

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


def auth_required(runtime, session: Session) -> bool:
    return api_keys.any_active_api_key(session)


def _caller_of(key: str, runtime, session: Session) -> Caller | None:
    row = api_keys.verify_api_key(session, key=key)
    if row is None:
        return None
    owner = f"keyfile:{row.name}" if row.prefix == api_keys.FILE_KEY_PREFIX else f"key:{row.id}"
    return Caller(scope_of(row.scope), owner, row.name)


def current_caller(request: Request, runtime: RuntimeDep, session: SessionDep) -> Caller:
    """`OPEN` when no keys exist, else the caller of the presented key (401 without one)."""
    caller, bucket = _authenticate(request, runtime, session)
    # End the lookup's transaction here (committing last_used_at): else the request would hold
    # a pooled connection until it ends (and, once last_used_at is written, SQLite's write
    # lock) while a turn opens sessions of its own. 64 concurrent streamed turns exhausted
    # the pool that way (scripts/bench_load.py). The rate limiter writes its bucket on a
    # connection of its own, so only after this commit (else it waits for this lock).
    session.commit()
    _rate_limit(request, bucket)
    return caller


def _authenticate(request: Request, runtime, session: Session) -> tuple[Caller, str]:
    """The caller and the key of its rate limit bucket."""
    if not auth_required(runtime, session):
        return OPEN, "client:" + (request.client.host if request.client else "unknown")
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthError(401, "missing API key: send 'Authorization: Bearer KEY' (create one with 'supportbot keys create NAME')")
    caller = _caller_of(key.strip(), runtime, session)
    if caller is None:
        raise AuthError(401, "invalid or revoked API key")
    return caller, "key:" + api_keys.hash_key(key.strip())  # the hash, never the key itself


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
