from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
import sqlalchemy as sa

from core.errors import InputError
from storage.repositories import api_keys
from storage.repositories.api_keys import DuplicateApiKeyName


def test_create_returns_the_plaintext_once_and_stores_only_its_hash(session):
    row, plaintext = api_keys.create_api_key(session, name="ci", scope="admin")
    session.commit()

    assert plaintext.startswith("sb_") and len(plaintext) >= 40
    assert row.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert row.prefix == plaintext[: api_keys.PREFIX_CHARS]
    assert row.is_admin and row.is_active
    assert plaintext not in repr(row) and row.key_hash not in repr(row)

    # Nothing in the table contains the key itself (the prefix alone is not the key).
    stored = session.execute(sa.text("SELECT * FROM api_keys")).all()
    assert len(stored) == 1
    for value in stored[0]:
        assert plaintext not in str(value)


def test_each_key_is_different(session):
    _, first = api_keys.create_api_key(session, name="a")
    _, second = api_keys.create_api_key(session, name="b")
    assert first != second


def test_verify_accepts_the_key_and_rejects_anything_else(session):
    row, plaintext = api_keys.create_api_key(session, name="ci")
    session.commit()

    assert api_keys.verify_api_key(session, key=plaintext).id == row.id
    last_char = "A" if plaintext[-1] != "A" else "B"
    for wrong in [
        plaintext[:-1] + last_char,  # same prefix, different key
        plaintext + "x",
        plaintext[: api_keys.PREFIX_CHARS],  # the displayed prefix is not a key
        row.key_hash,  # neither is the stored hash
        "",
        "Bearer " + plaintext,
    ]:
        assert api_keys.verify_api_key(session, key=wrong) is None, wrong


def test_verify_records_last_use_at_most_once_a_minute(session):
    row, plaintext = api_keys.create_api_key(session, name="ci")
    assert row.last_used_at is None

    api_keys.verify_api_key(session, key=plaintext)
    first_use = row.last_used_at
    assert first_use is not None
    api_keys.verify_api_key(session, key=plaintext)
    assert row.last_used_at == first_use  # throttled

    row.last_used_at = first_use - timedelta(minutes=5)
    api_keys.verify_api_key(session, key=plaintext)
    assert row.last_used_at > first_use - timedelta(minutes=5)


def test_revoked_keys_no_longer_verify(session):
    _, plaintext = api_keys.create_api_key(session, name="ci")
    revoked = api_keys.revoke_api_key(session, name="ci")
    assert revoked.revoked_at is not None and not revoked.is_active
    first_revocation = revoked.revoked_at
    assert api_keys.revoke_api_key(session, name="ci").revoked_at == first_revocation
    session.commit()
    assert api_keys.verify_api_key(session, key=plaintext) is None


def test_revoke_missing_key_is_none(session):
    assert api_keys.revoke_api_key(session, name="nope") is None


def test_any_active_api_key(session):
    assert api_keys.any_active_api_key(session) is False
    api_keys.create_api_key(session, name="a")
    api_keys.create_api_key(session, name="b")
    assert api_keys.any_active_api_key(session) is True
    api_keys.revoke_api_key(session, name="a")
    assert api_keys.any_active_api_key(session) is True
    api_keys.revoke_api_key(session, name="b")
    assert api_keys.any_active_api_key(session) is False


def test_names_are_unique_and_required(session):
    api_keys.create_api_key(session, name="ci")
    api_keys.revoke_api_key(session, name="ci")
    with pytest.raises(DuplicateApiKeyName, match="exists already"):
        api_keys.create_api_key(session, name="ci")
    with pytest.raises(InputError, match="name"):
        api_keys.create_api_key(session, name="  ")
    with pytest.raises(ValueError, match="scope"):
        api_keys.create_api_key(session, name="x", scope="root")


def test_list_api_keys(session):
    api_keys.create_api_key(session, name="a")
    api_keys.create_api_key(session, name="b")
    api_keys.revoke_api_key(session, name="a")
    assert [k.name for k in api_keys.list_api_keys(session)] == ["b"]
    assert {k.name for k in api_keys.list_api_keys(session, include_revoked=True)} == {"a", "b"}
    assert api_keys.get_api_key(session, name="b").scope == "customer"


def test_a_keys_file_is_imported_and_its_keys_verify(session, tmp_path):
    """Keys of an old api_keys_file (name:scope:sha256) move into the table; their owner
    stays keyfile:<name> (the caller is built from FILE_KEY_PREFIX)."""
    key = "any-old-key-text"
    path = tmp_path / "keys"
    path.write_text(f"# keys\nops:normal:{api_keys.hash_key(key)}\nbad:root:{'0' * 64}\n"
                    f"cust::{api_keys.hash_key('other')}\n")
    assert api_keys.import_keys_file(session, path) == 2
    session.commit()
    row = api_keys.verify_api_key(session, key=key)
    assert row is not None and row.name == "ops" and row.scope == "agent" and row.prefix == api_keys.FILE_KEY_PREFIX
    assert api_keys.verify_api_key(session, key="other").scope == "customer"
    api_keys.revoke_api_key(session, name="ops")
    session.commit()
    assert api_keys.import_keys_file(session, path) == 0  # a revoked key stays revoked
    assert api_keys.verify_api_key(session, key=key) is None
