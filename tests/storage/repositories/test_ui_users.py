"""UI users in the database (issue 19), and the one-time import of an old users file."""

from __future__ import annotations

import pytest

from core.errors import InputError
from storage.repositories import ui_users


def test_put_list_remove(session):
    ui_users.put_user(session, name="ann", role="agent", password_hash="h1")
    ui_users.put_user(session, name="bob", role="admin", password_hash="h2")
    ui_users.put_user(session, name="ann", role="admin", password_hash="h3")
    session.commit()
    assert [(u.name, u.role, u.password_hash) for u in ui_users.list_users(session)] == [
        ("ann", "admin", "h3"), ("bob", "admin", "h2")]
    assert ui_users.remove_user(session, name="ann") and not ui_users.remove_user(session, name="ann")
    with pytest.raises(ValueError):
        ui_users.put_user(session, name="eve", role="root", password_hash="x")


def test_a_users_file_is_imported_once(session, tmp_path):
    path = tmp_path / "ui_users"
    path.write_text("# users\nann:agent:pbkdf2_sha256$1$00$aa\nbob:admin:pbkdf2_sha256$1$00$bb\n")
    assert ui_users.import_users_file(session, path) == 2
    session.commit()
    ui_users.retire_users_file(path)
    assert not path.exists() and (tmp_path / "ui_users.imported").exists()
    # a user removed afterwards does not come back from a file put back in place
    ui_users.remove_user(session, name="ann")
    session.commit()
    (tmp_path / "ui_users.imported").rename(path)
    assert ui_users.import_users_file(session, path) == 0
    assert [u.name for u in ui_users.list_users(session)] == ["bob"]


def test_a_bad_users_file_is_refused(session, tmp_path):
    path = tmp_path / "ui_users"
    path.write_text("ann:root:x\n")
    with pytest.raises(InputError, match="ui_users:1"):
        ui_users.import_users_file(session, path)
