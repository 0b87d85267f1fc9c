"""finetune/retrain.py's rules, without training: the promotion gate, the split, the
lock, recovery after a killed run and the data watermark. The whole loop on a real
server is tests/integration/test_retrain.py."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.config import settings_with
from core.errors import InputError
from finetune import chat_recipe, classifier_recipe
from finetune import retrain as rt
from fixtures.adapters import write_adapter
from storage.db import make_engine, make_session_factory, upgrade
from storage.models import Export, RetrainRun


def gate(active_bench, cand_bench, active_fb, cand_fb):
    return {"benchmarks": {"b": active_bench}, "feedback": active_fb}, \
        {"benchmarks": {"b": cand_bench}, "feedback": cand_fb}


@pytest.mark.parametrize("bench, fb, promote", [
    ((90.0, 89.6), (10.0, 50.0), True),    # within tolerance, better on feedback
    ((90.0, 89.4), (10.0, 50.0), False),   # lost more than the tolerance
    ((90.0, 95.0), (50.0, 50.0), False),   # not better on the feedback slice
    ((90.0, 95.0), (50.0, 40.0), False),   # worse on the feedback slice
])
def test_classifier_gate(bench, fb, promote):
    active, candidate = gate(bench[0], bench[1], fb[0], fb[1])
    ok, reason = rt.decide("sentiment", active, candidate, tolerance=0.5)
    assert ok is promote
    assert reason.startswith("worse on benchmark") == (bench[1] < bench[0] - 0.5)


def test_small_losses_cannot_add_up_over_rounds():
    """Each round may lose up to the tolerance against the active version, but never more
    than that against the route's original model."""
    active, candidate = gate(89.7, 89.4, 10.0, 50.0)  # 0.3 below the active version: fine alone
    assert rt.decide("sentiment", active, candidate, tolerance=0.5)[0]
    ok, reason = rt.decide("sentiment", active, candidate, tolerance=0.5, baseline={"benchmarks": {"b": 90.0}})
    assert not ok and reason.startswith("worse on benchmark b than the original model: 90.0 → 89.4")
    assert rt.decide("sentiment", active, candidate, tolerance=0.5, baseline={"benchmarks": {"b": 89.8}})[0]


def answers(fact_recall, invented, feedback=3.0):
    return {"benchmarks": {"b.jsonl": 3.0}, "feedback": feedback,
            "answers": {"fact_recall": fact_recall, "invented": invented, "n": 120}}


@pytest.mark.parametrize("active, candidate, promote, why", [
    ((40.0, 5.0), (45.0, 5.0), True, "fact recall 40.0% → 45.0%"),
    ((40.0, 5.0), (45.0, 5.4), True, "fact recall"),  # invented within the tolerance (0.5 points)
    ((40.0, 5.0), (40.0, 5.0), False, "fact recall not higher"),
    ((40.0, 5.0), (38.0, 0.0), False, "fact recall not higher"),
    ((40.0, 5.0), (60.0, 6.0), False, "more replies with an invented value than the active version"),
])
def test_chat_gate_is_answer_quality_not_perplexity(active, candidate, promote, why):
    # the candidate's perplexity is far worse on everything: it does not decide
    ok, reason = rt.decide("chat", answers(*active), answers(*candidate, feedback=9.0) | {"benchmarks": {"b.jsonl": 9.0}},
                           tolerance=0.5)
    assert ok is promote and reason.startswith(why)


def test_chat_gate_against_the_original_model_and_without_an_evaluation():
    original = {"benchmarks": {}, "answers": {"fact_recall": 50.0, "invented": 0.0}}
    ok, reason = rt.decide("chat", answers(40.0, 0.0), answers(45.0, 0.0), 0.5, baseline=original)
    assert not ok and reason.startswith("lower fact recall than the original model: 50.0% → 45.0%")
    ok, reason = rt.decide("chat", answers(40.0, 2.0), answers(55.0, 2.0), 0.5, baseline=original)
    assert not ok and reason.startswith("more replies with an invented value than the original model")
    ok, reason = rt.decide("chat", {"benchmarks": {}, "feedback": 4.0}, {"benchmarks": {}, "feedback": 3.0}, 0.5)
    assert not ok and reason.startswith("cannot judge answer quality")


def test_chat_is_not_trained_without_a_grounded_evaluation_file(tmp_path):
    assert rt.cannot_judge(settings_with(), "sentiment") is None
    assert "SUPPORTBOT_RETRAIN_CHAT_EVAL" in rt.cannot_judge(settings_with(), "chat")
    assert "no such file" in rt.cannot_judge(settings_with(retrain_chat_eval=tmp_path / "gone.jsonl"), "chat")
    (tmp_path / "eval.jsonl").write_text("{}\n")
    assert rt.cannot_judge(settings_with(retrain_chat_eval=tmp_path / "eval.jsonl"), "chat") is None


def test_chat_judge_scores_replies_and_picks_on_fact_recall(tmp_path, monkeypatch):
    """_judge on stubbed replies (the model's generation is the only thing stubbed; the
    prompt-free scoring and the gate run): a candidate that states the facts without
    inventing is promoted; one that states fewer, or invents, is rejected."""
    from finetune import answer_quality

    rows = [{"question": "How long is shipping?", "language": "en", "passage": "Shipping takes 3-5 business days.",
             "facts": ["3-5 business days"]},
            {"question": "退货期限？", "language": "zh", "passage": "签收后 30 天内可以退货。", "facts": ["30天"]}]
    eval_path = tmp_path / "eval.jsonl"
    eval_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    replies = {"active": ["It ships soon.", "签收后30天内可以退货。"]}
    monkeypatch.setattr(answer_quality, "generate_replies", lambda ref, rows, cache: replies[Path(ref).name])
    monkeypatch.setattr(rt, "score_chat", lambda ref, data, settings: 3.0)  # perplexity: reported only
    settings = settings_with(home=tmp_path, retrain_chat_eval=eval_path, retrain_interpolation="1")

    def judge(candidate_replies):
        replies["candidate"] = candidate_replies
        return rt._judge(settings, "chat", "active", tmp_path / "candidate", [], str(tmp_path / "held.jsonl"))

    promote, reason, chosen, measured = judge(["Shipping takes 3-5 business days.", "签收后30天内可以退货。"])
    assert promote and chosen == tmp_path / "candidate" and reason.startswith("fact recall 50.0% → 100.0%")
    assert measured["candidate"]["answers"]["fact_recall"] == 100.0 and measured["candidate"]["feedback"] == 3.0
    promote, reason, _, _ = judge(["It ships in 2 days.", "签收后30天内可以退货。"])  # no better, and invents
    assert not promote and reason.startswith("more replies with an invented value than the active version: 0.0% → 50.0%")
    promote, reason, _, _ = judge(["Shipping takes 3-5 business days.", "可以退货。"])  # as good, not better
    assert not promote and reason.startswith("fact recall not higher: 50.0% → 50.0%")


def test_split_keeps_one_row_each_side_and_is_seeded():
    rows = list(range(10))
    train, held = rt.split_rows(rows, 0.3)
    assert len(held) == 3 and sorted(train + held) == rows
    assert rt.split_rows(rows, 0.3) == (train, held)
    assert [len(x) for x in rt.split_rows([1, 2], 0.9)] == [1, 1]


def test_plan_follows_the_configuration():
    s = settings_with(sentiment_model_zh="none", intent_model="none")
    assert rt.plan(s, None) == [("sentiment", "default"), ("chat", "default")]
    s = settings_with()
    assert ("sentiment", "zh") in rt.plan(s, None) and ("intent", "default") in rt.plan(s, None)
    assert rt.plan(s, ["sentiment/zh"]) == [("sentiment", "zh")]
    assert rt.plan(s, ["intent"]) == [("intent", "default")]


def test_task_files_per_route(monkeypatch):
    monkeypatch.setenv("SUPPORTBOT_RETRAIN_SENTIMENT_DATA", "a.csv, b.csv@0.5")
    monkeypatch.setenv("SUPPORTBOT_RETRAIN_SENTIMENT_ZH_BENCHMARK", "zh.csv")
    s = settings_with()
    assert rt._task_files(s, "sentiment", "default", "data") == ["a.csv", "b.csv@0.5"]
    assert rt._task_files(s, "sentiment", "zh", "benchmark") == ["zh.csv"]
    assert rt._task_files(s, "sentiment", "zh", "data") == []


@pytest.fixture
def two_hosts(tmp_path):
    """Two engines on one database: two hosts' retrain jobs."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    engines = (make_engine(url), make_engine(url))
    yield engines
    for e in engines:
        e.dispose()


def test_retrain_calls_the_recipes_with_typed_arguments(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(chat_recipe, "run", ran.append)
    monkeypatch.setattr(classifier_recipe, "run", ran.append)
    settings = settings_with(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", retrain_epochs=2,
                             retrain_learning_rate=1e-3, threads=2)
    new_rows, original = tmp_path / "new.jsonl", tmp_path / "original.jsonl"
    new_rows.write_text("")
    original.write_text("")
    # the active chat version is an adapter (no labels: a chat adapter has none): continued on its base
    active = write_adapter(tmp_path / "chat-v1", task="chat", base="smollm2-135m")
    rt._train(settings, "chat", str(active), [f"{new_rows}@2", f"{original}@0.5"], tmp_path / "cand", "chat-r1")
    (args,) = ran
    assert type(args) is chat_recipe.ChatArgs
    assert (args.train, args.base, args.init_from, args.output, args.version) == (
        [f"{new_rows}@2", f"{original}@0.5"], "smollm2-135m", str(active.resolve()), str(tmp_path / "cand"), "chat-r1")
    assert (args.epochs, args.learning_rate, args.threads, args.seed, args.max_steps) == (2.0, 1e-3, 2, rt.SEED, 0)
    assert args.database_url == settings.resolved_database_url and args.record

    # the active classifier is a plain model directory: it is the base, nothing to continue
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text("{}")
    (tmp_path / "new.csv").write_text("text,label\n")
    rt._train(settings, "intent", str(plain), [str(tmp_path / "new.csv")], tmp_path / "cand2", "intent-r1")
    args = ran[1]
    assert type(args) is classifier_recipe.ClassifierArgs
    assert (args.task, args.base, args.init_from, args.train) == ("intent", str(plain), None, [str(tmp_path / "new.csv")])

    with pytest.raises(InputError, match="gone.csv: no such file"):  # validated before anything runs
        rt._train(settings, "intent", str(plain), [str(tmp_path / "gone.csv")], tmp_path / "cand3", "intent-r2")
    assert len(ran) == 2


def test_only_one_run_holds_the_lock_across_hosts(two_hosts):
    a, b = two_hosts
    with rt.retrain_lock(a):
        with pytest.raises(rt.RetrainBusy, match="another retrain is running"):
            with rt.retrain_lock(b):
                pass
    with rt.retrain_lock(b):  # released
        pass


def test_a_dead_runs_lock_is_taken_over_once_it_expires(two_hosts):
    a, b = two_hosts
    dead = rt.retrain_lock(a, ttl_s=-1)  # entered and never left: a run killed with -9, its lease run out
    dead.__enter__()
    with rt.retrain_lock(b):
        with pytest.raises(rt.RetrainBusy):
            with rt.retrain_lock(a):
                pass


def test_the_heartbeat_renews_the_lease(two_hosts):
    from storage.repositories import leases

    a, _ = two_hosts
    with rt.retrain_lock(a, ttl_s=300, heartbeat_s=0.01):
        first = leases.current(a, name=rt.LEASE).expires_at
        while leases.current(a, name=rt.LEASE).expires_at == first:  # renewed, without a timed assertion
            time.sleep(0.01)
    assert leases.current(a, name=rt.LEASE) is None  # released


def test_a_killed_run_is_marked_and_its_data_is_not_consumed(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    sessions = make_session_factory(make_engine(url))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with sessions.begin() as session:
        done = RetrainRun(task="sentiment", status="rejected", finished_at=t0)
        killed = RetrainRun(task="sentiment", status="running")
        session.add_all([done, killed])
        session.flush()
        session.add_all([
            Export(what="sentiment", path="/x/a.csv", rows=1, sha256="0", until=t0, retrain_run_id=done.id),
            Export(what="sentiment", path="/x/b.csv", rows=1, sha256="0", until=t0 + timedelta(days=1),
                   retrain_run_id=killed.id),
        ])
    with sessions.begin() as session:
        assert rt.watermark(session, "sentiment", "default") == t0  # the killed run's export does not count
        assert rt.recover_killed(session) == 1
    with sessions.begin() as session:
        assert session.get(RetrainRun, killed.id).status == "killed"
        assert rt.watermark(session, "sentiment", "default") == t0
        assert rt.watermark(session, "intent", "default") is None


def test_a_run_killed_on_this_host_does_not_block_the_next_one_until_expiry(two_hosts):
    from storage.repositories import leases

    a, b = two_hosts
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a process of this host that is gone, as after kill -9
    gone = f"{socket.gethostname()}:{child.pid}:deadbeef"
    assert leases.acquire(a, name=rt.LEASE, holder=gone, ttl_s=300) is None
    with rt.retrain_lock(b) as holder:
        assert leases.current(b, name=rt.LEASE).holder == holder
    # a live holder on another host is never taken over before expiry
    assert leases.acquire(a, name=rt.LEASE, holder="another-host:1:x", ttl_s=300) is None
    with pytest.raises(rt.RetrainBusy):
        with rt.retrain_lock(b):
            pass
