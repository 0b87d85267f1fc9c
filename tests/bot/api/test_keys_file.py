"""API keys from the settings' keys file (`name:scope:sha256`): imported into the database
on start (issue 19: shared by every worker and host), gating the API from then on."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.server import create_app
from core.config import settings_with
from bot.runtime import Runtime
from bot.sentiment import SentimentService
from fixtures.fakes import KeywordClassifier
from storage.repositories import api_keys
from storage.repositories.api_keys import hash_key


def _start(tmp_path, keys):
    return Runtime.start(settings_with(home=tmp_path, api_keys_file=keys),
                         sentiment=SentimentService(KeywordClassifier("kw")))


def test_keys_file_is_imported_and_gates_every_worker(tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# ops keys\nci:normal:{hash_key('first-key')}\n")
    one = _start(tmp_path, keys)
    two = Runtime.start(settings_with(home=tmp_path), sentiment=SentimentService(KeywordClassifier("kw")))
    body = {"texts": ["good"]}
    try:
        for runtime in (one, two):  # the second worker has no keys file: the database has the key
            client = TestClient(create_app(runtime, ui=False))
            assert client.post("/v1/sentiment", json=body).status_code == 401
            ok = client.post("/v1/sentiment", json=body, headers={"Authorization": "Bearer first-key"})
            assert ok.status_code == 200
        with one.sessions.begin() as session:  # revoked in the database: refused everywhere
            api_keys.create_api_key(session, name="other")  # (with no active key the API is open)
            api_keys.revoke_api_key(session, name="ci")
        client = TestClient(create_app(two, ui=False))
        assert client.post("/v1/sentiment", json=body, headers={"Authorization": "Bearer first-key"}).status_code == 401
    finally:
        one.close(), two.close()
    # a later start with the file unchanged does not bring the revoked key back; a new line is imported
    keys.write_text(f"ci:normal:{hash_key('first-key')}\nci2:customer:{hash_key('second-key')}\n")
    three = _start(tmp_path, keys)
    try:
        client = TestClient(create_app(three, ui=False))
        auth = {"Authorization": "Bearer first-key"}
        assert client.post("/v1/sentiment", json=body, headers=auth).status_code == 401
        auth = {"Authorization": "Bearer second-key"}
        assert client.post("/v1/sentiment", json=body, headers=auth).status_code == 200
    finally:
        three.close()
