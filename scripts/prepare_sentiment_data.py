"""Build the sentiment training and benchmark files from the public datasets.

    python scripts/prepare_sentiment_data.py --datasets ../shared/datasets --out data/sentiment

Writes `text,label` CSVs (labels negative/neutral/positive):
  en_train.csv   SST-2 train (sentences and phrases), TweetEval train pool (3-class),
                 customer-service requests without complaint words as neutral and those
                 with strong upset words as negative (Bitext instructions, Banking77 train)
  zh_train.csv   ChnSentiCorp train, AFQMC customer-service questions as neutral
  sst2_dev.csv, tweeteval_val.csv, chnsenticorp_test.csv, chnsenticorp_test_unseen.csv,
  chnsenticorp_dev.csv   the benchmarks (never trained on)
  waimai_heldout.csv     1,000 waimai_10k reviews (food delivery; noisy labels), a benchmark
  waimai_stream.csv      the other waimai reviews, labelled: the feedback simulation's Chinese stream
  zh_unlabelled.csv      texts for a teacher to label (finetune classifier --teacher ...
                         --unlabelled): the other waimai reviews, STC-3 customer turns (Weibo
                         helpdesk) and AFQMC questions not in zh_train.csv, without labels
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


# Customer-service questions written for supportbot (not from a dataset): every topic of
# an online shop crossed with question templates, all neutral. The client's own test
# sentences are excluded so they stay a fair check.
ZH_TOPICS = ["订单", "快递", "物流信息", "发票", "电子发票", "增值税专用发票", "退款", "退货", "换货", "优惠券", "会员积分",
             "会员等级", "收货地址", "绑定的手机号", "登录密码", "账户信息", "支付方式", "运费", "库存", "尺码", "保修",
             "配送时间", "预售商品", "自提点", "分期付款", "发货时间", "退货地址", "售后服务", "订单号", "包裹"]
ZH_TEMPLATES = ["请问{t}怎么查看？", "{t}在哪里修改？", "请问{t}可以修改吗？", "我想了解一下{t}。", "{t}一般需要多久？",
                "可以帮我查一下{t}吗？", "请问怎么申请{t}？", "{t}的规则是什么？", "你好，想咨询一下{t}的问题", "请问{t}在哪里能看到？",
                "麻烦问一下，{t}怎么操作？", "请问有关于{t}的说明吗？"]
ZH_HELD_OUT = {"请问可以开发票吗？"}
# ...and complaints and praise about the same topics, so that talking about an order is
# not by itself "neutral".
ZH_NEGATIVE = ["{t}太慢了，非常失望！", "你们的{t}太差了，我要投诉", "{t}一直没人处理，太让人生气了", "{t}出了问题，等了一个星期也没解决",
               "{t}又错了，真的受够了", "对{t}非常不满意，太糟糕了"]
ZH_POSITIVE = ["{t}处理得很快，谢谢！", "客服很耐心，{t}的问题解决了，非常满意", "{t}很方便，好评！", "{t}比预期的还快，太棒了",
               "谢谢你们，{t}的事情办得很好"]
EN_TOPICS = ["order", "package", "parcel", "refund", "return", "replacement", "invoice", "delivery", "payment", "account",
             "subscription", "membership", "coupon", "exchange", "shipping", "card", "transfer", "warranty claim"]
EN_NEGATIVE = ["My {t} arrived damaged.", "The {t} is taking forever.", "I've been waiting two weeks for my {t} and nobody answers.",
               "Your {t} process is a mess.", "Still no news about my {t}, this is really annoying.",
               "The {t} was wrong again.", "I'm very unhappy with how my {t} was handled."]
EN_POSITIVE = ["Thanks, my {t} arrived quickly!", "Great help with my {t}, thank you!", "The {t} went smoothly, very happy.",
               "You sorted out my {t} in minutes, brilliant.", "Thank you, the {t} was handled perfectly."]


def zh_cs_questions() -> list[str]:
    return sorted({tpl.format(t=t) for t in ZH_TOPICS for tpl in ZH_TEMPLATES} - ZH_HELD_OUT)


def cs_statements(topics: list[str], templates: list[str], label: str) -> list[tuple[str, str]]:
    return [(tpl.format(t=t), label) for t in topics for tpl in templates]


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
    ap.add_argument("--max-unlabelled", type=int, default=3000, help="zh_unlabelled.csv: texts per source")
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
    # Top-up set for continuing the English adapter: written complaints/praise about shop
    # topics, plus replayed rows so it does not forget.
    en_topup = cs_statements(EN_TOPICS, EN_NEGATIVE, "negative") + cs_statements(EN_TOPICS, EN_POSITIVE, "positive") \
        + [(t, "neutral") for t in neutral_en[-400:]] + sst2[-600:] + tweets[-600:]
    rng.shuffle(en_topup)
    write(a.out / "en_topup.csv", en_topup)
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
    # A short top-up set for continuing the Chinese adapter: shop questions (neutral),
    # plus AFQMC and ChnSentiCorp rows so it does not forget.
    topup = [(t, "neutral") for t in zh_cs_questions()] + [(t, "neutral") for t in neutral_zh[-300:]] \
        + cs_statements(ZH_TOPICS, ZH_NEGATIVE, "negative") + cs_statements(ZH_TOPICS, ZH_POSITIVE, "positive") \
        + train[-600:]
    rng.shuffle(topup)
    write(a.out / "zh_topup.csv", topup)
    train_texts = {t for t, _ in train}
    test = [(r["text_a"].strip(), BIN[r["label"]]) for r in tsv(d / "chnsenticorp/test.tsv")]
    write(a.out / "chnsenticorp_test.csv", test)
    write(a.out / "chnsenticorp_test_unseen.csv", [r for r in test if r[0] not in train_texts])
    write(a.out / "chnsenticorp_dev.csv", [(r["text_a"].strip(), BIN[r["label"]]) for r in tsv(d / "chnsenticorp/dev.tsv")])

    # --- Chinese, for distillation: a held-out benchmark and unlabelled texts ---------------
    rng2 = random.Random(a.seed + 1)  # its own generator: the files above stay as they were
    with open(d / "waimai_10k/waimai_10k.csv", encoding="utf-8", newline="") as fh:
        waimai = [(r["review"].strip(), BIN[r["label"]]) for r in csv.DictReader(fh) if r["review"].strip()]
    rng2.shuffle(waimai)  # the file is sorted by label
    heldout = waimai[:1000]
    write(a.out / "waimai_heldout.csv", heldout)
    heldout_texts = {t for t, _ in heldout} | {t for t, _ in test}
    # The other waimai reviews with their labels: the shifted stream of the feedback
    # simulation (scripts/simulate_feedback.py --route zh); no shipped model trained on them.
    stream, seen = [], set()
    for t, label in waimai[1000:]:
        if t not in heldout_texts and t not in seen:
            seen.add(t)
            stream.append((t, label))
    write(a.out / "waimai_stream.csv", stream)
    stc3 = []
    for dialogue in json.load(open(d / "stc3_helpdesk/train_data_cn.json", encoding="utf-8")):
        for turn in dialogue["turns"]:
            if turn["sender"] == "customer":
                stc3.extend(u.strip() for u in turn["utterances"] if 4 <= len(u.strip()) <= 300)
    used = {t for t, _ in zh} | {t for t, _ in topup}
    pools = [sorted({t for t, _ in waimai[1000:]} - heldout_texts), sorted(set(stc3) - heldout_texts),
             sorted(set(neutral_zh) - used - heldout_texts)]
    unlabelled = []
    for pool in pools:
        rng2.shuffle(pool)
        unlabelled.extend(pool[: a.max_unlabelled])
    rng2.shuffle(unlabelled)
    with open(a.out / "zh_unlabelled.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text"])
        w.writerows([t] for t in unlabelled)
    print(f"{a.out / 'zh_unlabelled.csv'}: {len(unlabelled)} texts (waimai, STC-3 customer turns, AFQMC; "
          f"{', '.join(str(min(len(p), a.max_unlabelled)) for p in pools)})")


if __name__ == "__main__":
    main()
