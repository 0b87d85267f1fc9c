"""Logins of the staff UI, shared by every worker and host (before: a `ui_users` file
per host). Rows hold a salted password hash made by ui.auth; nothing here hashes.

`import_users_file` moves an old file in once: only while the table is empty, and the
file is then renamed `<name>.imported` so that a user removed later does not come back.
"""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.errors import InputError
from storage.models import UI_ROLES, UiUser, check_choice

log = logging.getLogger(__name__)


def get_user(session: Session, *, name: str) -> UiUser | None:
    return session.get(UiUser, name) if name else None


def list_users(session: Session) -> list[UiUser]:
    return list(session.scalars(sa.select(UiUser).order_by(UiUser.name)))


def any_user(session: Session) -> bool:
    return bool(session.scalar(sa.select(sa.exists().where(UiUser.name.is_not(None)))))


def put_user(session: Session, *, name: str, role: str, password_hash: str) -> UiUser:
    """Add a user, or change an existing one's role and password hash; the caller commits."""
    check_choice(role, UI_ROLES, "role")
    user = session.get(UiUser, name)
    if user is None:
        user = UiUser(name=name, role=role, password_hash=password_hash)
        session.add(user)
    else:
        user.role, user.password_hash = role, password_hash
    session.flush()
    return user


def remove_user(session: Session, *, name: str) -> bool:
    user = session.get(UiUser, name)
    if user is None:
        return False
    session.delete(user)
    session.flush()
    return True


def read_users_file(path: Path) -> list[tuple[str, str, str]]:
    """(name, role, hash) per line of an old `name:role:hash` users file."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[1] not in UI_ROLES:
            raise InputError(f"{path}:{n}: expected name:role:hash with role agent or admin")
        rows.append((parts[0], parts[1], parts[2]))
    return rows


def import_users_file(session: Session, path: Path) -> int:
    """Import an old users file into an empty table, once; returns the users imported.
    The caller commits, then calls `retire_users_file`."""
    if not path.is_file() or any_user(session):
        return 0
    rows = read_users_file(path)
    for name, role, digest in rows:
        put_user(session, name=name, role=role, password_hash=digest)
    return len(rows)


def retire_users_file(path: Path) -> None:
    """Rename an imported users file to `<name>.imported` (it is no longer read)."""
    try:
        path.replace(path.with_name(path.name + ".imported"))
    except FileNotFoundError:
        pass  # another worker renamed it first
    except OSError as exc:
        log.warning("could not rename %s after importing it (%s): it is not read any more", path, exc)
