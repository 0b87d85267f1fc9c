"""scripts/simulate_feedback.py --rounds: one short round through the real pipeline with
the packaged English sentiment model (stream → review queue → the agent's clicks →
retrain → curve), and the poisoned agent. Fine-tuning capped at one step."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from fixtures.env import clean_supportbot_env

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]

TEXTS = [("I love this, thank you so much!", "positive"), ("This is the worst service ever.", "negative"),
         ("My parcel arrived today.", "neutral"), ("meh, it is fine I guess", "neutral"),
         ("not bad at all", "positive"), ("could be better honestly", "negative")]


@pytest.fixture(scope="module")
def sim():
    spec = importlib.util.spec_from_file_location("simulate_feedback", REPO / "scripts" / "simulate_feedback.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(path: Path, rows) -> str:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return str(path)


def stream(tmp_path) -> str:
    rows = [(f"{text} (order {i})", label) for i in range(10) for text, label in TEXTS]
    return write(tmp_path / "stream.csv", rows)


def english_only(monkeypatch, tmp_path):
    clean_supportbot_env(monkeypatch, tmp_path)
    monkeypatch.setenv("SUPPORTBOT_SENTIMENT_MODEL_ZH", "none")  # no multilingual encoder to convert


def test_one_round_labels_what_the_queue_ranks_retrains_and_writes_the_curve(sim, tmp_path, monkeypatch):
    english_only(monkeypatch, tmp_path)
    monkeypatch.setenv("SUPPORTBOT_RETRAIN_MAX_STEPS", "1")
    monkeypatch.setenv("SUPPORTBOT_RETRAIN_INTERPOLATION", "1")
    bench = write(tmp_path / "bench.csv", [("great stuff", "positive"), ("awful", "negative")] * 5)
    out = tmp_path / "queue.json"
    a = sim.parse_args(["--home", str(tmp_path / "home"), "--rounds", "1", "--stream", stream(tmp_path),
                        "--stream-heldout", "12", "--turns-per-round", "40", "--budget", "22",
                        "--selector", "queue", "--benchmark", bench, "--json", str(out)])
    result = sim.run_rounds(a)
    first, second = result["rounds"]
    assert first["labels"] == 0 and second["labels"] == 22 and second["streamed"] == 40
    assert second["decision"] in ("promoted", "rejected") and second["rows"] == 22
    assert {"stream_heldout", "bench.csv"} <= set(second)
    assert json.loads(out.read_text())["rounds"] == result["rounds"] and out.with_suffix(".png").stat().st_size > 0
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'home' / 'supportbot.db'}")
    with engine.connect() as c:
        confirmed = c.execute(sa.text("select count(*) from feedback where review_status = 'confirmed' "
                                      "and confirmed_by = 'simulated-agent' and corrected_sentiment is not null"))
        assert confirmed.scalar() == 22


@pytest.mark.parametrize("poison", [False, True])
def test_the_agent_labels_what_it_is_shown_and_a_poisoned_one_flips_every_label(sim, tmp_path, monkeypatch, poison):
    english_only(monkeypatch, tmp_path)
    a = sim.parse_args(["--home", str(tmp_path / "home"), "--rounds", "1", "--stream", stream(tmp_path),
                        "--stream-heldout", "12", "--turns-per-round", "30", "--budget", "10", "--selector", "queue",
                        "--benchmark", write(tmp_path / "b.csv", [("great", "positive")])] + ["--poison"] * poison)
    simulation = sim.Simulation(a)
    simulation.stream_round()
    # the queue: what GET /v1/review-queue ranks first; random: any unlabelled streamed turn
    ranked = simulation.queue.list(caller=simulation.agent, task="sentiment", limit=10)["data"]
    chosen = simulation.choose()
    assert chosen == [item["message_id"] for item in ranked]
    assert [i["priority"] for i in ranked] == sorted((i["priority"] for i in ranked), reverse=True)
    given = simulation.label(chosen)
    simulation.a.selector = "random"
    again = simulation.choose()
    assert len(again) == 10 and not set(again) & set(chosen) and set(again) <= set(simulation.gold)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'home' / 'supportbot.db'}")
    with engine.connect() as c:
        labels = dict(c.execute(sa.text("select message_id, corrected_sentiment from feedback")).all())
    assert given["round_labels"] == 10 and len(labels) == 10
    truth = (lambda m: sim.FLIP[simulation.gold[m]]) if poison else (lambda m: simulation.gold[m])
    assert all(labels[m] == truth(m) for m in chosen)
    simulation.runtime.close()


def test_runs_are_drawn_together(sim, tmp_path):
    run = {"selector": "queue", "benchmarks": ["b.csv"], "rounds": [
        {"labels": 0, "stream_heldout": 80.0, "b.csv": 90.0}, {"labels": 100, "stream_heldout": 84.0, "b.csv": 89.9}]}
    files = []
    for selector in ("queue", "random"):
        files.append(tmp_path / f"{selector}.json")
        files[-1].write_text(json.dumps({**run, "selector": selector}))
    assert sim.main(["--combine", *map(str, files), "--png", str(tmp_path / "both.png")]) == 0
    assert (tmp_path / "both.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit):
        sim.parse_args(["--combine", str(files[0])])


def test_rounds_need_a_stream_and_a_benchmark(sim, tmp_path):
    with pytest.raises(SystemExit):
        sim.parse_args(["--home", str(tmp_path), "--rounds", "2", "--stream", "s.csv"])
    with pytest.raises(SystemExit):
        sim.parse_args(["--home", str(tmp_path)])
