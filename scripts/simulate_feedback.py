"""Simulate a support team correcting the bot: customers' turns from a labelled file go
through the real dialogue pipeline (guard → sentiment → … → storage); wherever the
served sentiment model is wrong, an "agent" records the right label with the same call
the API and UI use (POST /v1/feedback). Then `supportbot retrain` has data to learn from.

    python scripts/simulate_feedback.py --data data/sentiment/tweeteval_val.csv \\
        --corrections 300 --home var/retrain-demo
    SUPPORTBOT_HOME=var/retrain-demo SUPPORTBOT_RETRAIN_SENTIMENT_DATA=data/sentiment/en_topup.csv \\
        SUPPORTBOT_RETRAIN_SENTIMENT_BENCHMARK=data/sentiment/sst2_dev.csv supportbot retrain --task sentiment

Replies are made from the knowledge base (no chat model is loaded), so this is quick.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="CSV/TSV/JSONL text,label (negative/neutral/positive)")
    ap.add_argument("--corrections", type=int, default=300, help="stop after this many corrected turns")
    ap.add_argument("--home", type=Path, required=True, help="SUPPORTBOT_HOME of the simulated deployment")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from tqdm import tqdm

    from core.config import settings_with
    from bot.runtime import Runtime, use_offline_hub_for_local_models
    from bot.sentiment import SENTIMENT_LABELS
    from finetune.data import read_examples

    settings = settings_with(home=a.home)
    use_offline_hub_for_local_models(settings)
    runtime = Runtime.start(settings, generator=False)
    runtime.import_demo_kb_if_empty()
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
                                    comment="simulated agent correction")
            corrected += 1
            bar.update(1)
    bar.close()
    summary = {"data": a.data, "turns": turns, "corrections": corrected,
               "served_model_accuracy_on_these_turns": round(100 * (turns - corrected) / max(1, turns), 2),
               "seconds": round(time.monotonic() - started, 1), "home": str(a.home)}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
