"""Build the intent training and benchmark files from the public datasets.

    python scripts/prepare_intent_data.py --datasets ../shared/datasets --out data/intent

Writes `text,label` CSVs:
  bitext_train.csv, bitext_test.csv    Bitext customer support, 27 intents; our own
                                       stratified held-out split (--test-fraction)
  banking77_train.csv, banking77_test.csv   Banking77 as published (77 intents)
"""

from __future__ import annotations

import argparse
import csv
import random
from collections import defaultdict
from pathlib import Path


def write(path: Path, rows: list[tuple[str, str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(rows)
    print(f"{path}: {len(rows)} rows, {len({r[1] for r in rows})} labels")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--test-fraction", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=13)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(a.seed)

    by_intent: dict[str, set[str]] = defaultdict(set)
    with open(a.datasets / "bitext_customer_support/Bitext_Sample_Customer_Support_Training_Dataset.csv",
              newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            by_intent[r["intent"]].add(r["instruction"].strip())
    train, test = [], []
    for intent, texts in sorted(by_intent.items()):
        texts = sorted(texts)
        rng.shuffle(texts)
        k = max(1, round(len(texts) * a.test_fraction))
        test += [(t, intent) for t in texts[:k]]
        train += [(t, intent) for t in texts[k:]]
    rng.shuffle(train)
    write(a.out / "bitext_train.csv", train)
    write(a.out / "bitext_test.csv", test)

    for split in ("train", "test"):
        with open(a.datasets / f"banking77/{split}.csv", newline="", encoding="utf-8") as fh:
            rows = [(r["text"].strip(), r["category"]) for r in csv.DictReader(fh)]
        write(a.out / f"banking77_{split}.csv", rows)


if __name__ == "__main__":
    main()
