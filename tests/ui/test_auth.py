"""UI users: salted password hashes in the database, roles, and the open mode; an old users
file is imported once on first start."""

from __future__ import annotations

import pytest

from core.errors import InputError
from fixtures.dialogue import make_runtime
from ui.auth import Access, add_user, hash_password, list_users, remove_user, verify_password


def test_hash_is_salted_and_verifies():
    a, b = hash_password("correct horse"), hash_password("correct horse")
    assert a != b and a.startswith("pbkdf2_sha256$")
    assert verify_password("correct horse", a) and not verify_password("wrong horse", a)
    assert not verify_password("x", "garbage")


@pytest.fixture
def sessions(tmp_path):
    runtime = make_runtime(tmp_path)
    yield runtime.sessions
    runtime.close()


def test_users_roles_and_access(sessions):
    assert not Access(sessions).enabled and Access(sessions).role(None) == "admin"  # no users: open
    add_user(sessions, "ana", "agent", "agent-password")
    add_user(sessions, "root", "admin", "admin-password")
    access = Access(sessions)
    assert access.enabled and access.check_login("ana", "agent-password")
    assert not access.check_login("ana", "admin-password") and not access.check_login("nobody", "x" * 8)
    assert (access.role("ana"), access.role("root"), access.role("nobody")) == ("agent", "admin", None)
    assert remove_user(sessions, "ana") and not access.check_login("ana", "agent-password")
    assert list(list_users(sessions)) == ["root"]


def test_two_workers_see_the_same_users(tmp_path):
    """A user added through one worker (or the CLI on another host) can log in on all."""
    one, two = make_runtime(tmp_path), make_runtime(tmp_path)
    try:
        add_user(one.sessions, "ana", "agent", "agent-password")
        add_user(one.sessions, "root", "admin", "admin-password")
        first = Access(one.sessions)
        assert Access(two.sessions).check_login("ana", "agent-password")
        remove_user(two.sessions, "ana")
        assert first.role("ana") is None and not first.check_login("ana", "agent-password")
    finally:
        one.close(), two.close()


def test_an_old_users_file_is_imported_on_first_start(tmp_path):
    from ui.auth import hash_password as h

    (tmp_path / "ui_users").write_text(f"ana:agent:{h('agent-password')}\n")
    runtime = make_runtime(tmp_path)
    try:
        assert Access(runtime.sessions).check_login("ana", "agent-password")
        assert not (tmp_path / "ui_users").exists() and (tmp_path / "ui_users.imported").exists()
    finally:
        runtime.close()


@pytest.mark.parametrize("name, role, password", [("bad name", "agent", "password1"), ("ok", "boss", "password1"),
                                                  ("ok", "agent", "short")])
def test_add_user_rejects_bad_input(sessions, name, role, password):
    with pytest.raises(InputError):
        add_user(sessions, name, role, password)
