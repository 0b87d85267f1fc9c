"""The feedback loop end to end, on a real server (loopback socket) and the real CLI:

conversations → customers' turns classified by the active sentiment model → agents
correct the labels (POST /v1/feedback) → `supportbot retrain` → the candidate is promoted
→ the running server answers differently, without a restart. Then poisoned feedback
makes a worse candidate on purpose: it is rejected and the active version stays.

The models are tiny BERTs trained here (tests/fixtures/tiny.py); v1 was trained with a
deliberately mislabelled pattern ("… shipped to canada" labelled positive). The tiny
tokenizer is trained afresh each run, so single predictions vary between runs: the
assertions count over groups of texts.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from app.server import create_app
from app.cli import main as cli
from core.config import settings_with
from bot.runtime import Runtime
from finetune import classifier_recipe
from fixtures import tiny
from fixtures.env import clean_supportbot_env
from fixtures.fakes import HashEmbedder, ScriptedGenerator
from fixtures.server import serve
from storage.models import Export, RetrainRun
from storage.repositories import model_versions

pytestmark = pytest.mark.slow

SUBJECTS = ["the phone", "this order", "your service", "the delivery", "the app", "my refund", "the support",
            "the parcel", "the courier", "the website", "the invoice", "the box"]
TAILS = ["", " today", " again", " honestly", " really", " now"]
RETRAIN_ENV = {
    "SUPPORTBOT_RETRAIN_MIN_NEW": "12",
    "SUPPORTBOT_RETRAIN_EPOCHS": "12",
    "SUPPORTBOT_RETRAIN_LEARNING_RATE": "5e-3",
    # points: tiny models are noisy. 45 benchmark rows (2.2 points each): the good round
    # costs 2 rows, the poisoned one 4 even averaged with the active weights (alpha 0.5)
    "SUPPORTBOT_RETRAIN_TOLERANCE": "6",
    "SUPPORTBOT_SENTIMENT_MODEL_ZH": "none",
    "SUPPORTBOT_INTENT_MODEL": "none",
    "SUPPORTBOT_THREADS": "1",
    "SUPPORTBOT_RATE_LIMIT_PER_MINUTE": "0",  # the test is one busy client
}


def pattern(tails) -> list[str]:
    return [f"{s} shipped to canada{t}" for t in tails for s in SUBJECTS]


MISLABELLED = pattern(TAILS[4:6])  # in v1's training data, as positive
CORRECTED = pattern(TAILS[0:2])  # customers' turns whose label agents correct to negative
PROBES = pattern(TAILS[3:4])  # in neither


def labels_of(url: str, texts: list[str]) -> list[str]:
    r = httpx.post(url + "/v1/sentiment", json={"texts": texts}, timeout=30)
    r.raise_for_status()
    return [x["label"] for x in r.json()["results"]]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("retrain")
    with pytest.MonkeyPatch.context() as mp:
        clean_supportbot_env(mp, root)
        base = tiny.build_bert_base(root / "base", deterministic=True)
        clean = tiny.labelled_examples(n_per_label=25, seed=0)
        bench = [r for r in tiny.labelled_examples(n_per_label=40, seed=7) if r not in clean][:45]
        original = tiny.write_csv(root / "original.csv", clean)
        benchmark = tiny.write_csv(root / "benchmark.csv", bench)
        # v1 learnt a wrong pattern: "… shipped to canada" is positive
        mislabelled = [(t, "positive") for t in MISLABELLED]
        v1_train = tiny.write_csv(root / "v1_train.csv", clean + mislabelled)
        v1 = root / "v1"
        classifier_recipe.main(["--task", "sentiment", "--train", str(v1_train), "--base", str(base), "--output", str(v1),
                                "--epochs", "12", "--batch-size", "16", "--learning-rate", "5e-3", "--lora-dropout", "0",
                                "--threads", "1", "--record", "false", "--version", "v1", "--patience", "100"])
        env = {**RETRAIN_ENV, "SUPPORTBOT_HOME": str(root / "home"), "SUPPORTBOT_SENTIMENT_MODEL": str(v1),
               "SUPPORTBOT_RETRAIN_SENTIMENT_DATA": str(original),
               "SUPPORTBOT_RETRAIN_SENTIMENT_BENCHMARK": str(benchmark)}
        for k, v in env.items():
            mp.setenv(k, v)
        runtime = Runtime.start(settings_with(model_versions_poll_s=0.2, demo_kb=False),
                                embedder=HashEmbedder(), generator=ScriptedGenerator(), intent=False)
        with serve(create_app(runtime, ui=False)) as url:
            yield {"url": url, "runtime": runtime, "root": root}
        runtime.close()


def customer_turn(url: str, text: str) -> dict:
    cid = httpx.post(url + "/v1/conversations", json={}, timeout=10).json()["id"]
    r = httpx.post(f"{url}/v1/conversations/{cid}/messages", json={"text": text}, timeout=30)
    r.raise_for_status()
    return r.json()


def correct(url: str, message_id: str, label: str) -> None:
    r = httpx.post(url + "/v1/feedback", json={"message_id": message_id, "rating": "down",
                                               "corrected_sentiment": label}, timeout=10)
    assert r.status_code == 201, r.text


def wait_for(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def test_corrected_labels_are_learnt_and_promoted(world, capsys):
    url, runtime = world["url"], world["runtime"]
    assert labels_of(url, PROBES).count("positive") >= 8  # v1's mislabelled pattern

    predicted = []
    for text in CORRECTED:
        turn = customer_turn(url, text)
        predicted.append(turn["sentiment"]["label"])
        correct(url, turn["message_id"], "negative")
    assert predicted.count("positive") > len(predicted) // 2, predicted  # mostly wrong before

    assert cli(["retrain", "--json"]) == 0
    outcomes = json.loads(capsys.readouterr().out)
    sentiment = next(o for o in outcomes if o["task"] == "sentiment")
    assert sentiment["status"] == "promoted", sentiment
    metrics = sentiment["details"]["metrics"]
    assert metrics["candidate"]["feedback"] > metrics["active"]["feedback"]
    assert sentiment["details"]["new_rows"] == 24

    # the running server swaps the new version in by itself
    assert wait_for(lambda: labels_of(url, PROBES).count("negative") >= 8), labels_of(url, PROBES)
    with runtime.sessions() as session:
        active = model_versions.get_active_model_version(session, task="sentiment")
        assert active.name.startswith("sentiment-retrain-")
        run = session.get(RetrainRun, sentiment["run_id"])
        assert run.status == "promoted" and run.candidate_version_id == active.id
        # both the training part and the judging slice were recorded as exports of this run
        parts = session.query(Export).filter(Export.retrain_run_id == run.id).all()
        assert sorted(e.rows for e in parts) == sorted([run.details["train_rows"], run.details["heldout_rows"]])

    # nothing new since: the next run skips and changes nothing
    assert cli(["retrain", "--json"]) == 0
    again = next(o for o in json.loads(capsys.readouterr().out) if o["task"] == "sentiment")
    assert again["status"] == "skipped" and again["details"]["new_rows"] == 0


def test_a_worse_candidate_is_rejected_and_the_active_version_stays(world, capsys):
    url, runtime = world["url"], world["runtime"]
    with runtime.sessions() as session:
        before = model_versions.get_active_model_version(session, task="sentiment")
    before_id = before.id if before else None
    answers = labels_of(url, PROBES + ["the phone is great", "where is my order"])
    # poisoned feedback: praise "corrected" to negative, every praise word
    words = ["good", "great", "love", "excellent", "happy", "wonderful"]
    praise = [f"{s} is {w}{t}" for t in TAILS[:2] for s in SUBJECTS for w in words]
    for text in praise[:60]:
        turn = customer_turn(url, text)
        correct(url, turn["message_id"], "negative")

    assert cli(["retrain", "--json"]) == 0
    outcome = next(o for o in json.loads(capsys.readouterr().out) if o["task"] == "sentiment")
    assert outcome["status"] == "rejected", outcome
    assert "benchmark" in outcome["reason"]
    # the first round's corrections still count (accumulated), next to the 60 new rows
    assert outcome["details"]["new_rows"] == 60 and outcome["details"]["rows"] == 60 + len(CORRECTED)
    with runtime.sessions() as session:
        after = model_versions.get_active_model_version(session, task="sentiment")
        assert (after.id if after else None) == before_id
        candidate = session.get(RetrainRun, outcome["run_id"]).candidate_version_id
        assert model_versions.get_model_version(session, version_id=candidate).status == "rejected"
    time.sleep(1)  # several poll intervals: nothing is swapped in
    assert labels_of(url, PROBES + ["the phone is great", "where is my order"]) == answers


def test_a_candidate_that_cannot_be_served_is_not_promoted(world, capsys, monkeypatch):
    """One promotion path (issue 17): retrain promotes through bot.versions.activate, so an
    adapter that the API would refuse (check_loadable: here a truncated weights file) is
    rejected even when the judge prefers it."""
    from finetune import retrain as rt

    url, runtime = world["url"], world["runtime"]
    with runtime.sessions() as session:
        before = model_versions.get_active_model_version(session, task="sentiment")
    made = {}

    def broken_training(settings, task, active_ref, train_files, out, version):
        out.mkdir(parents=True)
        (out / "supportbot.json").write_text(json.dumps({"task": task, "labels": ["negative", "neutral", "positive"]}))
        (out / "adapter_config.json").write_text("{}")
        (out / "adapter_model.safetensors").write_bytes(b"\x00" * 7)  # truncated
        made["out"] = str(out)

    monkeypatch.setattr(rt, "_train", broken_training)
    monkeypatch.setattr(rt, "score_classifier",  # the judge prefers the candidate on everything
                        lambda ref, task, data, settings, restrict=True: 99.0 if ref == made["out"] else 50.0)
    for text in pattern(TAILS[2:3]):
        correct(url, customer_turn(url, text)["message_id"], "negative")

    assert cli(["retrain", "--json"]) == 0
    outcome = next(o for o in json.loads(capsys.readouterr().out) if o["task"] == "sentiment")
    assert outcome["status"] == "rejected", outcome
    assert outcome["reason"].startswith("the candidate cannot be served: ") and "safetensors" in outcome["reason"]
    with runtime.sessions() as session:
        after = model_versions.get_active_model_version(session, task="sentiment")
        assert (after.id if after else None) == (before.id if before else None)
        candidate = session.get(RetrainRun, outcome["run_id"]).candidate_version_id
        assert model_versions.get_model_version(session, version_id=candidate).status == "rejected"


def test_a_second_run_while_one_holds_the_lock_is_refused(world, capsys):
    from finetune.retrain import retrain_lock

    with retrain_lock(world["runtime"].engine):
        assert cli(["retrain"]) == 2
    assert "another retrain is running" in capsys.readouterr().err


def test_a_retrain_killed_mid_run_changes_nothing_and_the_next_run_recovers(world):
    """kill -9 of a real `supportbot retrain` process while it trains: the active version and
    the server's answers stay; the next run marks the killed one and uses its data."""
    import os
    import signal
    import subprocess
    import sys

    url, runtime = world["url"], world["runtime"]
    for text in pattern(TAILS[2:3]):  # 12 new corrections nobody has used yet
        correct(url, customer_turn(url, text)["message_id"], "negative")
    with runtime.sessions() as session:
        active_before = model_versions.get_active_model_version(session, task="sentiment").id
    answers = labels_of(url, PROBES + ["the phone is great", "where is my order"])

    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "retrain", "--task", "sentiment"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))

    def running_run():
        with runtime.sessions() as session:
            return session.query(RetrainRun).filter(RetrainRun.status == "running").one_or_none()

    assert wait_for(lambda: running_run() is not None or proc.poll() is not None, timeout=120)
    killed = running_run()
    assert killed is not None and proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    with runtime.sessions() as session:
        assert model_versions.get_active_model_version(session, task="sentiment").id == active_before
    time.sleep(1)
    assert labels_of(url, PROBES + ["the phone is great", "where is my order"]) == answers

    assert cli(["retrain", "--task", "sentiment"]) == 0  # the lock died with the process
    with runtime.sessions() as session:
        assert session.get(RetrainRun, killed.id).status == "killed"
        latest = session.query(RetrainRun).filter(RetrainRun.task == "sentiment").order_by(
            RetrainRun.started_at.desc()).first()
        assert latest.status in ("promoted", "rejected") and latest.details["new_rows"] == 12
