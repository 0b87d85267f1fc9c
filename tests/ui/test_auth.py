"""UI users: salted password hashes in a small file, roles, and the open mode."""

from __future__ import annotations

import pytest

from bot.errors import InputError
from ui.auth import Access, add_user, hash_password, read_users, remove_user, verify_password


def test_hash_is_salted_and_verifies():
    a, b = hash_password("correct horse"), hash_password("correct horse")
    assert a != b and a.startswith("pbkdf2_sha256$")
    assert verify_password("correct horse", a) and not verify_password("wrong horse", a)
    assert not verify_password("x", "garbage")


def test_users_file_roles_and_access(tmp_path):
    path = tmp_path / "ui_users"
    assert not Access(path).enabled and Access(path).role(None) == "admin"  # no users: open
    add_user(path, "ana", "agent", "agent-password")
    add_user(path, "root", "admin", "admin-password")
    assert "agent-password" not in path.read_text()
    access = Access(path)
    assert access.enabled and access.check_login("ana", "agent-password")
    assert not access.check_login("ana", "admin-password") and not access.check_login("nobody", "x" * 8)
    assert (access.role("ana"), access.role("root"), access.role("nobody")) == ("agent", "admin", None)
    assert remove_user(path, "ana") and not access.check_login("ana", "agent-password")
    assert list(read_users(path)) == ["root"]


@pytest.mark.parametrize("name, role, password", [("bad name", "agent", "password1"), ("ok", "boss", "password1"),
                                                  ("ok", "agent", "short")])
def test_add_user_rejects_bad_input(tmp_path, name, role, password):
    with pytest.raises(InputError):
        add_user(tmp_path / "ui_users", name, role, password)
