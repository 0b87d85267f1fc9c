"""/v1/model-versions (API.md): the versions per task, and activation (admin), over a
real SQLite file; adapters are tiny fake directories."""

from __future__ import annotations

import pytest

from bot.api.schemas import ModelVersionPublic, TaskVersionsPublic
from core.config import settings_with
from bot.runtime import Runtime
from fixtures.adapters import truncate_weights, write_adapter
from storage.repositories import api_keys
from storage.repositories import model_versions as repo


@pytest.fixture
def runtime(tmp_path):
    rt = Runtime.start(settings_with(home=tmp_path / "home", intent_model="none"))
    yield rt
    rt.close()


def register(runtime, tmp_path, name="sentiment-v9", task="sentiment") -> str:
    path = write_adapter(tmp_path / name, task=task)
    with runtime.sessions() as s:
        v = repo.create_model_version(s, task=task, name=name, path=str(path), base_model="minilm-l6",
                                      metrics={"macro_f1": 0.91, "accuracy": 0.93})
        s.commit()
        return v.id


def add_key(runtime, name, scope) -> str:
    with runtime.sessions() as s:
        _row, key = api_keys.create_api_key(s, name=name, scope=scope)
        s.commit()
    return key


def test_list_shows_every_task_with_its_configured_routes(client, runtime, tmp_path):
    body = client.get("/v1/model-versions").json()
    assert set(body) == {"sentiment", "intent", "chat"}
    assert body["sentiment"] == {"routes": {"default": {"active": None, "configured_default": "sentiment-en"},
                                            "zh": {"active": None, "configured_default": "sentiment-zh-me5"}},
                                 "versions": []}
    assert body["intent"]["routes"] == {"default": {"active": None, "configured_default": None}}  # intent off
    assert body["chat"]["routes"]["default"]["configured_default"] == "chat-bitext"

    vid = register(runtime, tmp_path)
    body = client.get("/v1/model-versions").json()
    TaskVersionsPublic.model_validate(body["sentiment"])
    [v] = body["sentiment"]["versions"]
    assert v["id"] == vid and v["status"] == "candidate" and v["metrics"]["macro_f1"] == 0.91
    assert v["activated_at"] is None and v["path"] == str(tmp_path / "sentiment-v9")


def test_activate_promotes_and_an_earlier_version_can_be_activated_again(client, runtime, tmp_path):
    vid = register(runtime, tmp_path)
    r = client.post(f"/v1/model-versions/{vid}/activate")
    assert r.status_code == 200, r.text
    body = ModelVersionPublic.model_validate(r.json())
    assert body.id == vid and body.status == "active" and body.activated_at is not None

    listing = client.get("/v1/model-versions").json()["sentiment"]
    assert listing["routes"]["default"]["active"] == "sentiment-v9"
    baseline = next(v for v in listing["versions"] if v["name"] == "sentiment-en")
    assert baseline["status"] == "retired" and baseline["path"] == "sentiment-en"
    with runtime.sessions() as s:  # committed: another session sees it
        assert repo.get_active_model_version(s, task="sentiment").id == vid

    # Rolling back over the API: activate the previous version by its id.
    r = client.post(f"/v1/model-versions/{baseline['id']}/activate")
    assert r.status_code == 200 and r.json()["name"] == "sentiment-en"
    assert client.get("/v1/model-versions").json()["sentiment"]["routes"]["default"]["active"] == "sentiment-en"


def test_unknown_id_is_404_and_unloadable_is_422_changing_nothing(client, runtime, tmp_path):
    r = client.post("/v1/model-versions/no-such-id/activate")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
    vid = register(runtime, tmp_path)
    truncate_weights(tmp_path / "sentiment-v9")
    r = client.post(f"/v1/model-versions/{vid}/activate")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["type"] == "invalid_request" and "truncated or corrupted" in r.json()["error"]["message"]
    listing = client.get("/v1/model-versions").json()["sentiment"]
    assert listing["routes"]["default"]["active"] is None
    assert [v["name"] for v in listing["versions"]] == ["sentiment-v9"]  # no baseline registered either


def test_activation_needs_an_admin_key_once_keys_exist(client, runtime, tmp_path):
    vid = register(runtime, tmp_path)
    normal = add_key(runtime, "ci", "agent")
    admin = add_key(runtime, "ops", "admin")
    assert client.get("/v1/model-versions").status_code == 401
    r = client.post(f"/v1/model-versions/{vid}/activate")
    assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"
    assert client.get("/v1/model-versions", headers={"Authorization": f"Bearer {normal}"}).status_code == 200
    r = client.post(f"/v1/model-versions/{vid}/activate", headers={"Authorization": f"Bearer {normal}"})
    assert r.status_code == 403 and r.json()["error"]["type"] == "forbidden"
    with runtime.sessions() as s:
        assert repo.get_active_model_version(s, task="sentiment") is None
    r = client.post(f"/v1/model-versions/{vid}/activate", headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 200 and r.json()["status"] == "active"
