"""Build the sentiment training and benchmark files from the public datasets.

    python scripts/prepare_sentiment_data.py --datasets ../shared/datasets --out data/sentiment

Writes `text,label` CSVs (labels negative/neutral/positive):
  en_train.csv   SST-2 train (sentences and phrases), TweetEval train pool (3-class),
                 customer-service requests without complaint words as neutral and those
                 with strong upset words as negative (Bitext instructions, Banking77 train)
  zh_train.csv   ChnSentiCorp train, AFQMC customer-service questions as neutral
  sst2_dev.csv, tweeteval_val.csv, chnsenticorp_test.csv, chnsenticorp_test_unseen.csv,
  chnsenticorp_dev.csv   the benchmarks (never trained on)
Sizes are capped with --max-* so a 2-core CPU trains in reasonable time. Deterministic.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from pathlib import Path

# Customer-service requests are neutral only when they carry no complaint: a request with
# one of these words ("my card still hasn't arrived") is left out of the neutral class,
# and one with a strong cue ("this exchange rate is awful") is labelled negative.
COMPLAINT = re.compile(
    r"\b(not|never|still|no|nothing|damaged|broken|wrong|declined|failed|fail|stolen|lost|haven't|hasn't|didn't|"
    r"don't|doesn't|can't|cannot|won't|isn't|wasn't|problem|issue|twice|missing|error|why|refused|rejected|blocked|"
    r"stuck|late|delay\w*|charged|fraud|complain\w*|waiting|disappear\w*)\b", re.I)
UPSET = re.compile(
    r"\b(terrible|awful|ridiculous|angry|frustrat\w*|unacceptable|worst|hate|disappoint\w*|annoy\w*|upset|forever|"
    r"useless|scam|fed up|horrible|pissed|furious|sick of|tired of|fuck\w*|shit\w*|damn|stupid|crap|rubbish|ages)\b", re.I)

BIN = {"0": "negative", "1": "positive"}


def tsv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


def write(path: Path, rows: list[tuple[str, str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(rows)
    counts = {}
    for _, label in rows:
        counts[label] = counts.get(label, 0) + 1
    print(f"{path}: {len(rows)} rows {counts}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, required=True, help="folder with sst2/, chnsenticorp/, ...")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--max-sst2", type=int, default=24000, help="SST-2 train rows (of 67k)")
    ap.add_argument("--max-en-neutral", type=int, default=7000, help="Bitext + Banking77 requests")
    ap.add_argument("--max-chnsenticorp", type=int, default=9600)
    ap.add_argument("--max-zh-neutral", type=int, default=2500, help="AFQMC questions")
    ap.add_argument("--seed", type=int, default=13)
    a = ap.parse_args()
    d, rng = a.datasets, random.Random(a.seed)
    a.out.mkdir(parents=True, exist_ok=True)

    # --- English ---------------------------------------------------------------
    sst2 = [(r["sentence"].strip(), BIN[r["label"]]) for r in tsv(d / "sst2/train.tsv")]
    sst2 = [r for r in sst2 if len(r[0].split()) >= 3]  # drop 1-2 word phrases
    rng.shuffle(sst2)
    tweets = [(j["text"], j["label"]) for j in map(json.loads, open(d / "tweeteval_sentiment/train_pool.jsonl"))]
    with open(d / "bitext_customer_support/Bitext_Sample_Customer_Support_Training_Dataset.csv", newline="") as fh:
        bitext = [r["instruction"].strip() for r in csv.DictReader(fh)]
    with open(d / "banking77/train.csv", newline="") as fh:
        banking = [r["text"].strip() for r in csv.DictReader(fh)]
    requests = sorted(set(bitext) | set(banking))
    upset = [(t, "negative") for t in requests if UPSET.search(t)]
    neutral_en = [t for t in requests if not UPSET.search(t) and not COMPLAINT.search(t)]
    rng.shuffle(neutral_en)
    en = sst2[: a.max_sst2] + tweets + [(t, "neutral") for t in neutral_en[: a.max_en_neutral]] + upset * 3
    rng.shuffle(en)
    write(a.out / "en_train.csv", en)
    write(a.out / "sst2_dev.csv", [(r["sentence"].strip(), BIN[r["label"]]) for r in tsv(d / "sst2/dev.tsv")])
    write(a.out / "tweeteval_val.csv",
          [(j["text"], j["label"]) for j in map(json.loads, open(d / "tweeteval_sentiment/val.jsonl"))])

    # --- Chinese ---------------------------------------------------------------
    train = [(r["text_a"].strip(), BIN[r["label"]]) for r in tsv(d / "chnsenticorp/train.tsv") if r["text_a"].strip()]
    rng.shuffle(train)
    afqmc = set()
    for line in open(d / "afqmc/dev.json", encoding="utf-8"):
        j = json.loads(line)
        afqmc.update([j["sentence1"].strip(), j["sentence2"].strip()])
    neutral_zh = sorted(afqmc)
    rng.shuffle(neutral_zh)
    zh = train[: a.max_chnsenticorp] + [(t, "neutral") for t in neutral_zh[: a.max_zh_neutral]]
    rng.shuffle(zh)
    write(a.out / "zh_train.csv", zh)
    train_texts = {t for t, _ in train}
    test = [(r["text_a"].strip(), BIN[r["label"]]) for r in tsv(d / "chnsenticorp/test.tsv")]
    write(a.out / "chnsenticorp_test.csv", test)
    write(a.out / "chnsenticorp_test_unseen.csv", [r for r in test if r[0] not in train_texts])
    write(a.out / "chnsenticorp_dev.csv", [(r["text_a"].strip(), BIN[r["label"]]) for r in tsv(d / "chnsenticorp/dev.tsv")])


if __name__ == "__main__":
    main()
