"""Hot swap of model versions in a running Runtime (bot/runtime.py): a newly active
sentiment version replaces the served one without a restart, a service taken before the
swap keeps working, a version that fails to load leaves the previous one serving, and a
service passed to Runtime.start is never swapped. Two tiny real BERT classifiers
(tests/fixtures/tiny.py) with different random weights stand for two versions."""

from __future__ import annotations

import logging
import shutil
import time

import numpy as np
import pytest

from core.config import settings_with
from core.errors import InputError
from bot.runtime import Runtime
from bot.sentiment import SentimentService
from bot import versions
from fixtures import tiny
from fixtures.fakes import HashEmbedder, KeywordClassifier, ScriptedGenerator
from storage.repositories import model_versions as repo

TEXTS = ["the phone is great", "where is my order", "my refund is awful", "i love the support"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two classifiers, and what each one says about TEXTS (loaded on their own)."""
    root = tmp_path_factory.mktemp("swap")
    a = tiny.build_bert_classifier(root / "A", seed=0)
    b = tiny.build_bert_classifier(root / "B", seed=1)
    expected = {}
    for name, path in (("A", a), ("B", b)):
        service = SentimentService.load(str(path), None, root / "cache")
        expected[name] = scores(service)
    assert not np.allclose(expected["A"], expected["B"], atol=1e-3)  # they can be told apart
    return {"A": str(a), "B": str(b), "expected": expected, "root": root}


def scores(service) -> np.ndarray:
    results = service.classify(TEXTS)
    return np.array([[r.scores[label] for label in ("negative", "neutral", "positive")] for r in results])


def says(service, models, name) -> bool:
    return np.allclose(scores(service), models["expected"][name], atol=1e-5)


def start(tmp_path, models, **services) -> Runtime:
    settings = settings_with(home=tmp_path / "home", sentiment_model=models["A"], sentiment_model_zh="none",
                             intent_model="none", model_versions_poll_s=0.05, demo_kb=False, threads=1,
                             inference_dtype="fp32")  # as `models` computed what each says
    return Runtime.start(settings, embedder=HashEmbedder(), generator=ScriptedGenerator(), intent=False,
                         **services)


@pytest.fixture
def rt(tmp_path, models):
    runtime = start(tmp_path, models)
    yield runtime
    runtime.close()


def register(rt, name, path, *, checked=True) -> str:
    """Register a sentiment version and make it active: through bot.versions (which
    checks the files), or straight in the repository (no checks at all)."""
    with rt.sessions.begin() as s:
        version = repo.create_model_version(s, task="sentiment", name=name, path=path)
        if checked:
            versions.activate(s, rt.settings, version.id)
        else:
            repo.activate_model_version(s, version_id=version.id)
        return version.id


def test_a_newly_active_version_is_swapped_in(rt, models):
    before = rt.sentiment
    assert says(before, models, "A")
    dialogue = rt.dialogue
    assert dialogue.sentiment is before
    assert rt.refresh_models(wait=True) == []  # nothing new yet

    register(rt, "B", models["B"])
    assert rt.served_refs()[("sentiment", "default")] == models["B"]
    assert rt.refresh_models(wait=True) == ["sentiment"]

    after = rt.sentiment
    assert after is not before
    assert says(after, models, "B")
    assert rt.models_status()["sentiment"] == {"default": models["B"]}
    assert rt.dialogue is dialogue and dialogue.sentiment is after  # the dialogue uses it too
    cid = dialogue.create_conversation()
    turn = dialogue.turn(cid, TEXTS[0])
    assert np.isclose(turn.sentiment["score"], max(models["expected"]["B"][0]), atol=1e-5)
    # a request that took the old service before the swap finishes on it
    assert says(before, models, "A")
    assert rt.refresh_models(wait=True) == []  # and nothing is reloaded again


def test_a_running_runtime_picks_the_new_version_up_by_itself(rt, models):
    before = rt.sentiment
    register(rt, "B", models["B"])
    deadline = time.monotonic() + 60
    while rt.sentiment is before and time.monotonic() < deadline:
        time.sleep(0.05)  # each use checks for a new version (every model_versions_poll_s)
    assert rt.sentiment is not before
    assert says(rt.sentiment, models, "B")


def test_a_version_that_fails_to_load_leaves_the_previous_one_serving(rt, models, tmp_path, caplog):
    before = rt.sentiment
    dialogue = rt.dialogue
    broken = tmp_path / "broken"
    shutil.copytree(models["B"], broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # an interrupted copy
    with pytest.raises(InputError):  # `models activate` would refuse it
        versions.check_loadable("sentiment", str(broken))
    register(rt, "broken", str(broken), checked=False)

    with caplog.at_level(logging.ERROR, logger="bot.runtime"):
        assert rt.refresh_models(wait=True) == ["sentiment"]  # tried, and no exception
    assert rt.sentiment is before and dialogue.sentiment is before
    assert says(rt.sentiment, models, "A")
    assert any("could not load the newly active sentiment model" in r.getMessage() and str(broken) in r.getMessage()
               for r in caplog.records), caplog.text
    assert ("sentiment", (str(broken), None)) in rt._swap_failed
    assert rt.refresh_models(wait=True) == []  # not retried at once

    # a good version activated afterwards is swapped in
    register(rt, "B", models["B"])
    assert rt.refresh_models(wait=True) == ["sentiment"]
    assert says(rt.sentiment, models, "B") and dialogue.sentiment is rt.sentiment


def test_a_missing_directory_is_a_failed_load_too(rt, models, tmp_path):
    before = rt.sentiment
    register(rt, "gone", str(tmp_path / "no-such-dir"), checked=False)
    rt.refresh_models(wait=True)
    assert rt.sentiment is before and says(before, models, "A")


def test_a_pinned_service_is_never_swapped(tmp_path, models):
    pinned = SentimentService(KeywordClassifier("kw-en"))
    rt = start(tmp_path, models, sentiment=pinned)
    try:
        assert rt.sentiment is pinned
        register(rt, "B", models["B"])
        assert rt.served_refs()[("sentiment", "default")] == models["B"]
        assert rt.refresh_models(wait=True) == []
        time.sleep(0.2)
        for _ in range(5):  # uses that would start a background swap
            assert rt.sentiment is pinned
            time.sleep(0.06)
        assert rt.dialogue.sentiment is pinned
        assert rt.models_status()["sentiment"] == {"default": "kw-en"}
    finally:
        rt.close()
