"""Simulate a support team teaching the bot, through the real pipeline: customers' turns
from a labelled stream go through the dialogue (guard → sentiment → … → storage); an
"agent" labels turns with the same calls the API and UI use; `supportbot retrain` learns
from them and its gate decides. Two modes.

Rounds (issue 18): each round streams N new turns, the agent labels a budget of them —
the ones the review queue ranks first (`--selector queue`, bot/review_queue.py, what
GET /v1/review-queue shows) or a random sample of the unlabelled ones (`--selector
random`), confirming or correcting each with the queue's one click — then retrain runs
and the gate promotes or rejects. After every round the served model is scored on a
held-out part of the stream and on the fixed benchmark: a learning curve (JSON + PNG).

    python scripts/simulate_feedback.py --rounds 5 --turns-per-round 400 --budget 100 \\
        --stream data/sentiment/tweeteval_val.csv --stream-heldout 1000 \\
        --original data/sentiment/en_topup.csv --benchmark data/sentiment/sst2_dev.csv \\
        --selector queue --home var/sim-en-queue --json runs/sim/en-queue.json

`--poison` makes the agent flip every label it gives (a rejected round changes nothing).
`--combine en-queue.json en-random.json --png en.png` draws several runs in one picture.

Corrections only (the first version): wherever the served model is wrong on a turn of
`--data`, the agent records the right label (POST /v1/feedback's call), up to
`--corrections`; then run `supportbot retrain` yourself.

Replies are made from the knowledge base (no chat model is loaded), so turns are quick.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FLIP = {"negative": "positive", "positive": "negative", "neutral": "negative"}


def parse_args(argv: list[str] | None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, help="SUPPORTBOT_HOME of the simulated deployment")
    ap.add_argument("--combine", nargs="+", type=Path, metavar="RUN_JSON",
                    help="no simulation: draw these runs' curves (e.g. queue and random) into --png")
    ap.add_argument("--png", type=Path, help="with --combine: the picture to write")
    one = ap.add_argument_group("corrections only")
    one.add_argument("--data", help="CSV/TSV/JSONL text,label (negative/neutral/positive)")
    one.add_argument("--corrections", type=int, default=300, help="stop after this many corrected turns")
    rounds = ap.add_argument_group("rounds")
    rounds.add_argument("--rounds", type=int, default=0, help="rounds of stream → label → retrain (0: the other mode)")
    rounds.add_argument("--stream", help="labelled customer turns, in stream order after a seeded shuffle")
    rounds.add_argument("--stream-heldout", type=int, default=1000,
                        help="rows of --stream kept out of the stream to score the served model on")
    rounds.add_argument("--turns-per-round", type=int, default=400)
    rounds.add_argument("--budget", type=int, default=100, help="labels the agent gives per round")
    rounds.add_argument("--selector", choices=("queue", "random"), default="queue")
    rounds.add_argument("--route", choices=("default", "zh"), default="default",
                        help="zh: the Chinese sentiment model (SUPPORTBOT_SENTIMENT_MODEL_ZH)")
    rounds.add_argument("--original", action="append", default=[], help="the task's original data (retrain replay)")
    rounds.add_argument("--benchmark", action="append", default=[], help="fixed benchmark(s) the gate guards")
    rounds.add_argument("--poison", action="store_true", help="the agent flips every label")
    rounds.add_argument("--seed", type=int, default=7)
    rounds.add_argument("--json", type=Path, help="write the learning curve here (and a .png beside it)")
    a = ap.parse_args(argv)
    if a.combine:
        if not a.png:
            ap.error("--combine needs --png")
        return a
    if not a.home:
        ap.error("--home is required")
    if a.rounds and not (a.stream and a.benchmark):
        ap.error("--rounds needs --stream and --benchmark")
    if not a.rounds and not a.data:
        ap.error("give --data (corrections only) or --rounds with --stream")
    return a


def start_runtime(home: Path, **overrides):
    """The deployment: SUPPORTBOT_* settings from the environment, `overrides` on top."""
    from core.config import settings_with
    from bot.runtime import Runtime, use_offline_hub_for_local_models

    settings = settings_with(home=home, **overrides)
    use_offline_hub_for_local_models(settings)
    runtime = Runtime.start(settings, generator=False)
    runtime.import_demo_kb_if_empty()
    return runtime


def corrections_only(a) -> dict:
    from tqdm import tqdm

    from bot.callers import Caller
    from bot.sentiment import SENTIMENT_LABELS
    from finetune.data import read_examples

    runtime = start_runtime(a.home)
    agent = Caller(scope="agent", owner="simulation", name="simulated-agent")
    rows = [e for e in read_examples(a.data) if e.label in SENTIMENT_LABELS]
    turns = corrected = 0
    started = time.monotonic()
    bar = tqdm(total=a.corrections, desc="corrections", unit="turn", file=sys.stderr)
    for e in rows:
        if corrected >= a.corrections:
            break
        conversation = runtime.dialogue.create_conversation(channel="simulation")
        result = runtime.dialogue.turn(conversation, e.text)
        turns += 1
        if result.sentiment["label"] != e.label:
            runtime.feedback.record(message_id=result.message_id, rating="down", corrected_sentiment=e.label,
                                    comment="simulated agent correction", caller=agent)
            corrected += 1
            bar.update(1)
    bar.close()
    return {"data": a.data, "turns": turns, "corrections": corrected,
            "served_model_accuracy_on_these_turns": round(100 * (turns - corrected) / max(1, turns), 2),
            "seconds": round(time.monotonic() - started, 1), "home": str(a.home)}


class Simulation:
    """One deployment (a home), its stream, its agent and its curve."""

    def __init__(self, a):
        from bot.sentiment import SENTIMENT_LABELS
        from finetune.data import read_examples

        self.a = a
        rows = [(e.text, e.label) for e in read_examples(a.stream) if e.label in SENTIMENT_LABELS]
        random.Random(a.seed).shuffle(rows)
        self.heldout, self.stream = rows[: a.stream_heldout], rows[a.stream_heldout:]
        a.home.mkdir(parents=True, exist_ok=True)
        self.heldout_file = a.home / "stream_heldout.csv"
        write_csv(self.heldout_file, self.heldout)
        where = "_zh" if a.route == "zh" else ""
        self.runtime = start_runtime(a.home, intent_model="none", intent_model_zh="none", **{
            f"retrain_sentiment{where}_data": ",".join(a.original) or None,
            f"retrain_sentiment{where}_benchmark": ",".join(a.benchmark)})
        from bot.callers import Caller
        from bot.review_queue import for_runtime

        self.queue = for_runtime(self.runtime)
        self.agent = Caller(scope="agent", owner="simulation", name="simulated-agent")
        self.gold: dict[str, str] = {}  # message id -> true label, for every streamed turn
        self.labelled: set[str] = set()
        self.rng = random.Random(a.seed + 1)
        self.position = 0

    def stream_round(self) -> int:
        rows = self.stream[self.position: self.position + self.a.turns_per_round]
        self.position += len(rows)
        for text, label in rows:
            conversation = self.runtime.dialogue.create_conversation(channel="simulation")
            self.gold[self.runtime.dialogue.turn(conversation, text).message_id] = label
        return len(rows)

    def choose(self) -> list[str]:
        if self.a.selector == "random":
            pool = sorted(set(self.gold) - self.labelled)
            return self.rng.sample(pool, min(self.a.budget, len(pool)))
        chosen, cursor = [], None
        language = "zh" if self.a.route == "zh" else None
        while len(chosen) < self.a.budget:
            page = self.queue.list(caller=self.agent, task="sentiment", language=language, cursor=cursor,
                                   limit=min(100, self.a.budget - len(chosen)))
            chosen += [item["message_id"] for item in page["data"] if item["message_id"] in self.gold]
            cursor = page["next_cursor"]
            if not cursor:
                break
        return chosen

    def label(self, message_ids: list[str]) -> dict:
        """The agent's clicks: confirm the model's label when right, else correct it."""
        corrected = 0
        for mid in message_ids:
            truth = FLIP[self.gold[mid]] if self.a.poison else self.gold[mid]
            result = self.queue.decide(mid, task="sentiment", caller=self.agent, label=truth)
            corrected += result["rating"] == "down"
            self.labelled.add(mid)
        return {"round_labels": len(message_ids), "corrected": corrected}

    def score(self) -> dict:
        from finetune.retrain import score_classifier

        ref = self.runtime.served_refs()[("sentiment", self.a.route)]
        s = self.runtime.settings
        out = {"stream_heldout": score_classifier(ref, "sentiment", self.heldout_file, s, restrict=False)}
        for bench in self.a.benchmark:
            out[Path(bench).name] = score_classifier(ref, "sentiment", bench, s)
        return {"model": ref, **out}

    def retrain(self) -> dict:
        from finetune.retrain import retrain

        task = "sentiment/zh" if self.a.route == "zh" else "sentiment"
        outcome = retrain(self.runtime, tasks=[task], echo=lambda line: print(line, file=sys.stderr))[0]
        self.runtime.refresh_models(wait=True)
        metrics = outcome.details.get("metrics", {})
        return {"decision": outcome.status, "reason": outcome.reason, "alpha": metrics.get("alpha"),
                "rows": outcome.details.get("rows"), "train_s": outcome.details.get("train_s"),
                "eval_s": outcome.details.get("eval_s")}


def write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    import csv

    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def run_rounds(a) -> dict:
    sim = Simulation(a)
    started = time.monotonic()
    curve = [{"round": 0, "labels": 0, **sim.score()}]
    print(json.dumps(curve[-1]), file=sys.stderr)
    labels = 0
    for n in range(1, a.rounds + 1):
        t0 = time.monotonic()
        streamed = sim.stream_round()
        given = sim.label(sim.choose())
        labels += given["round_labels"]
        outcome = sim.retrain()
        point = {"round": n, "labels": labels, "streamed": streamed, **given, **outcome, **sim.score(),
                 "round_s": round(time.monotonic() - t0, 1)}
        curve.append(point)
        print(json.dumps(point), file=sys.stderr)
        if a.json:
            save(a, curve, started)
    return save(a, curve, started) if a.json else summary(a, curve, started)


def summary(a, curve: list[dict], started: float) -> dict:
    return {"selector": a.selector, "route": a.route, "poison": a.poison, "stream": a.stream,
            "stream_heldout_rows": a.stream_heldout, "turns_per_round": a.turns_per_round, "budget": a.budget,
            "benchmarks": [Path(b).name for b in a.benchmark], "original": a.original, "seed": a.seed,
            "rounds": curve, "seconds": round(time.monotonic() - started, 1)}


def save(a, curve: list[dict], started: float) -> dict:
    result = summary(a, curve, started)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    plot([result], a.json.with_suffix(".png"))
    return result


def plot(results: list[dict], path: Path) -> None:
    """Held-out stream and benchmark accuracy of the served model against labels given, one
    line per run (e.g. queue vs random)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for result in results:
        xs = [p["labels"] for p in result["rounds"]]
        name = result.get("name") or result["selector"] + (" (poisoned)" if result.get("poison") else "")
        axes[0].plot(xs, [p["stream_heldout"] for p in result["rounds"]], marker="o", label=name)
        for bench in result["benchmarks"]:
            axes[1].plot(xs, [p[bench] for p in result["rounds"]], marker="o", label=f"{name}: {bench}")
    axes[0].set_title("held-out part of the stream")
    axes[1].set_title("fixed benchmark")
    for ax in axes:
        ax.set_xlabel("labels given by the agent")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if a.combine:
        plot([{**json.loads(p.read_text()), "name": p.stem} for p in a.combine], a.png)  # named by file
        print(f"wrote {a.png}")
        return 0
    result = run_rounds(a) if a.rounds else corrections_only(a)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
