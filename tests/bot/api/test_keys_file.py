"""API keys from the settings' keys file (`name:scope:sha256`), re-read when it changes."""

from __future__ import annotations

import os

from fastapi.testclient import TestClient

from bot.api.app import create_app
from bot.config import settings_with
from bot.runtime import Runtime
from bot.sentiment import SentimentService
from fixtures.fakes import KeywordClassifier
from storage.repositories.api_keys import hash_key


def test_keys_file_gates_the_api_and_follows_edits(tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# ops keys\nci:normal:{hash_key('first-key')}\n")
    runtime = Runtime.start(settings_with(home=tmp_path, api_keys_file=keys),
                            sentiment=SentimentService(KeywordClassifier("kw")))
    client = TestClient(create_app(runtime, ui=False))
    body = {"texts": ["good"]}
    assert client.post("/v1/sentiment", json=body).status_code == 401
    ok = client.post("/v1/sentiment", json=body, headers={"Authorization": "Bearer first-key"})
    assert ok.status_code == 200

    keys.write_text(f"ci:normal:{hash_key('second-key')}\n")
    st = keys.stat()
    os.utime(keys, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later mtime, even on coarse clocks
    assert client.post("/v1/sentiment", json=body, headers={"Authorization": "Bearer first-key"}).status_code == 401
    assert client.post("/v1/sentiment", json=body, headers={"Authorization": "Bearer second-key"}).status_code == 200
    runtime.close()
