"""A corrupted or incompatible model directory is refused at activation through the API
with a clear error, and the version serving before keeps serving (issue 8). Tiny real
BERT classifiers stand for the versions; the running Runtime hot-swaps as in production."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.server import create_app
from core.config import settings_with
from bot.runtime import Runtime
from fixtures import tiny
from fixtures.fakes import HashEmbedder, ScriptedGenerator
from storage.repositories import model_versions as repo

TEXTS = ["the phone is great", "where is my order", "my refund is awful"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("versions")
    return {"A": tiny.build_bert_classifier(root / "A", seed=0), "B": tiny.build_bert_classifier(root / "B", seed=1)}


def scores(client) -> np.ndarray:
    r = client.post("/v1/sentiment", json={"texts": TEXTS})
    assert r.status_code == 200, r.text
    return np.array([[x["scores"][k] for k in ("negative", "neutral", "positive")] for x in r.json()["results"]])


def register(rt, name: str, path) -> str:
    with rt.sessions.begin() as s:
        return repo.create_model_version(s, task="sentiment", name=name, path=str(path)).id


def test_a_broken_version_is_refused_and_the_active_one_keeps_serving(tmp_path, models):
    settings = settings_with(home=tmp_path / "home", sentiment_model=str(models["A"]), sentiment_model_zh="none",
                             intent_model="none", model_versions_poll_s=0.05, demo_kb=False, threads=1)
    rt = Runtime.start(settings, embedder=HashEmbedder(), generator=ScriptedGenerator(), intent=False)
    client = TestClient(create_app(rt, ui=False))
    before = scores(client)

    good = register(rt, "sentiment-b", models["B"])
    assert client.post(f"/v1/model-versions/{good}/activate").status_code == 200
    deadline = time.monotonic() + 30
    while np.allclose(scores(client), before, atol=1e-5):  # hot swap, no restart
        assert time.monotonic() < deadline, "the new version was not swapped in"
        time.sleep(0.05)
    serving = scores(client)

    truncated = shutil.copytree(models["B"], tmp_path / "truncated")
    weights = next(truncated.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-64])
    garbage = shutil.copytree(models["B"], tmp_path / "garbage")
    next(garbage.glob("*.safetensors")).write_bytes(b"\x00" * 100)
    no_config = shutil.copytree(models["B"], tmp_path / "no-config")
    (no_config / "config.json").unlink()
    for name, path in (("truncated", truncated), ("garbage", garbage), ("no-config", no_config),
                       ("gone", tmp_path / "deleted")):
        vid = register(rt, f"sentiment-{name}", path)
        r = client.post(f"/v1/model-versions/{vid}/activate")
        assert r.status_code == 422, (name, r.text)
        err = r.json()["error"]
        assert err["type"] == "invalid_request" and str(path) in err["message"], err
        time.sleep(0.2)  # several poll periods: nothing may change
        assert np.allclose(scores(client), serving, atol=1e-5), name
        state = client.get("/v1/model-versions").json()["sentiment"]["routes"]["default"]
        assert state["active"] == "sentiment-b", name
    rt.close()
