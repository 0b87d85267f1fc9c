"""What the customer is told: do the replies carry the knowledge base's facts?

    python scripts/eval_answers.py --start-server                  # the tune split, a server of its own
    python scripts/eval_answers.py --url http://127.0.0.1:7860 [--key KEY] [--stream]
    python scripts/eval_answers.py --start-server --split heldout  # only when the tuning is done
    python scripts/eval_answers.py --check-set --split all         # the question set against the KB
    python scripts/eval_answers.py --rescore runs/eval-answers.json  # an earlier run's replies, scored again

Each question is one customer turn in a new conversation: POST /v1/chat/completions,
model "supportbot" (non-streamed, or SSE with --stream), against a real server (--url, or
--start-server: `supportbot serve --no-ui` on a free loopback port with a throwaway
SUPPORTBOT_HOME, rate limiting off, stopped at the end).

The questions (scripts/data/answers/{tune,heldout}.jsonl, written by hand against the demo
knowledge base) carry the article(s) that answer them, the key facts a correct reply must
state (each a list of acceptable surface strings) and strings that would contradict the
article. The default is the tune split; the held-out split is used only when asked for
by --split heldout|all (keep it untouched while tuning).

Metrics per language and overall:
- retrieval top-1 / top-3: the response's `sources` (article ids in order) on answerable
  questions; top-3 is over what the API returned (it may return fewer than 3);
- fact recall (facts found / facts expected, answerable questions) and the all-facts rate;
- invented: share of replies with a number, amount, duration, phone number, e-mail, link or
  quoted menu name found in none of the expected and returned articles (nor in the
  question itself, which a reply may echo);
- contradictions: share of replies containing one of the question's contradiction strings;
- refusal on unanswerable questions (the server's "can't help" / hand-over texts, or
  escalate=true), and false refusals on answerable ones;
- hand-overs (escalate=true), reply in the customer's language (share of CJK letters),
  reply length (words for English, characters for Chinese), seconds per turn (median, p90).

Prints a table and writes --json (default runs/eval-answers.json) with every question's
reply, sources, found/missed facts and invented items.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
import unicodedata
from collections import defaultdict
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import ServeProcess, cpu_name, percentile  # noqa: E402

DATA = ROOT / "scripts" / "data" / "answers"
SPLITS = {"tune": [DATA / "tune.jsonl"], "heldout": [DATA / "heldout.jsonl"],
          "all": [DATA / "tune.jsonl", DATA / "heldout.jsonl"]}
KB_DIR = ROOT / "bot" / "demo_kb"
KINDS = ("plain", "typo", "angry", "indirect", "two_questions", "two_articles", "unanswerable")

# ---------------------------------------------------------------------------------------
# text normalisation and fact matching

from finetune.answer_quality import (  # noqa: E402 - the matching shared with the retrain gate
    CJK as _CJK, DASHES as _DASHES, fact_alternatives, fact_found, match_facts, normalize)

_CJK_CHAR = re.compile(f"[{_CJK}]")


def contradictions_in(reply: str, contradictions: list[str]) -> list[str]:
    text = normalize(reply)
    return [c for c in contradictions or [] if c.strip() and normalize(c) in text]


# ---------------------------------------------------------------------------------------
# invented numbers, amounts, durations, phone numbers, e-mails, links and menu names

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"\b(?:https?://)?(?:www\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|cn|example|io|shop|co)"
                  r"(?:/[\w./-]*)?", re.I)
_PHONE = re.compile(r"(?<![\w.])\+?\d[\d ()-]{5,}\d(?![\w])")
_TIME = re.compile(r"(?<!\d)(\d{1,2}):(\d{2})(?!\d)")
_NUMBER = re.compile(r"\d+(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
_ENUMERATOR = re.compile(r"(?m)^\s*(?:\d+[.)、:]|\(\d+\))\s")
_ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
              "八": 8, "九": 9}
_ZH_UNITS = {"十": 10, "百": 100, "千": 1000}
# Chinese numerals count only before a unit of time, money or instalments ("三十天",
# "两个工作日", "九十九元"); "一个订单", "一下", "第一" are words, not claims.
_ZH_NUMERAL = re.compile(r"(?<!第)([零〇一二两三四五六七八九十百千]+)(?=(?:个)?(?:工作日|小时|钟头|分钟|天|日|周|星期|礼拜|个月|月|年|元|块|期|岁|周岁))")
_QUOTED = re.compile(r'"([^"\n]{2,40})"|「([^」\n]{2,40})」|『([^』\n]{2,40})』')


def zh_numeral_value(numeral: str) -> int | None:
    """一..十, 两, 十五, 二十, 三十, 九十九, 一百二十 -> int; None if it is not a number."""
    total, current = 0, None
    for ch in numeral:
        if ch in _ZH_DIGITS:
            current = _ZH_DIGITS[ch] if current is None else current * 10 + _ZH_DIGITS[ch]
        elif ch in _ZH_UNITS:
            total += (1 if current is None else current) * _ZH_UNITS[ch]
            current = None
        else:
            return None
    return total + (current or 0)


def _number_key(raw: str) -> str:
    try:
        value = Decimal(raw.replace(",", ""))
    except InvalidOperation:
        return raw
    value = value.normalize()
    return format(value, "f")


def extract_claims(text: str) -> dict[str, set[str]]:
    """What a text states that can be checked against the sources, normalised:
    numbers (amounts and durations reduce to their number: "$9.90" -> "9.9", "30 days" ->
    "30", "三十天" -> "30", full-width digits -> ASCII), times ("9:00"), phone numbers (digits
    only), e-mails, links, and quoted names ("Report a problem", “修改地址”)."""
    text = unicodedata.normalize("NFKC", text or "")
    text = _DASHES.sub("-", text)
    out: dict[str, set[str]] = {"number": set(), "time": set(), "phone": set(), "email": set(),
                                "link": set(), "quoted": set()}
    for q in _QUOTED.findall(text.replace("\u201c", '"').replace("\u201d", '"')):
        name = normalize(next(p for p in q if p))
        if name and not re.fullmatch(r"[\d\s.,:/-]+", name):
            out["quoted"].add(name)
    for m in _EMAIL.findall(text):
        out["email"].add(m.lower().rstrip("."))
    text = _EMAIL.sub(" ", text)
    for m in _URL.findall(text):
        out["link"].add(re.sub(r"^(https?://)?(www\.)?", "", m.lower()).rstrip("/."))
    text = _URL.sub(" ", text)
    text = _ENUMERATOR.sub(" ", text)
    for m in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if len(digits) >= 7 and not _looks_like_range(m.group()):
            out["phone"].add(digits)
            text = text.replace(m.group(), " ", 1)
    for h, mm in _TIME.findall(text):
        out["time"].add(f"{int(h)}:{mm}")
    text = _TIME.sub(" ", text)
    for m in _NUMBER.findall(text):
        out["number"].add(_number_key(m))
    for m in _ZH_NUMERAL.findall(text):
        value = zh_numeral_value(m)
        if value is not None:
            out["number"].add(str(value))
    return out


def _looks_like_range(s: str) -> bool:
    """'3-5', '7 - 14', '1,500 - 2,000' are numbers, not a phone number."""
    parts = [p for p in re.split(r"\s*-\s*", s.strip()) if p]
    return len(parts) == 2 and all(len(re.sub(r"\D", "", p)) <= 5 for p in parts)


def source_claims(texts: list[str]) -> dict[str, set[str]]:
    """The claims of the sources, plus the hours of their times ("9:00" allows "9 am")."""
    merged: dict[str, set[str]] = defaultdict(set)
    for t in texts:
        for kind, values in extract_claims(t).items():
            merged[kind] |= values
    merged["number"] |= {t.split(":")[0] for t in merged["time"]}
    return merged


def invented(reply: str, sources: list[str], question: str = "") -> list[str]:
    """What the reply states that appears in none of `sources` (the article texts) nor in
    the question: numbers, times, phone numbers, e-mails, links, quoted names."""
    allowed = source_claims([*sources, question])
    text = normalize(" ".join([*sources, question]))
    claims = extract_claims(reply)
    found = [n for n in sorted(claims["number"]) if n not in allowed["number"]]
    found += [t for t in sorted(claims["time"]) if t not in allowed["time"]]
    found += [p for p in sorted(claims["phone"]) if not any(p in q or q in p for q in allowed["phone"])]
    found += [v for kind in ("email", "link") for v in sorted(claims[kind])
              if v not in allowed[kind] and v not in text]
    found += [f'"{q}"' for q in sorted(claims["quoted"]) if q not in text]
    return found


# ---------------------------------------------------------------------------------------
# refusals and language

# The server's own texts (bot/prompting.py TEXTS: no_answer, handoff) and what a model
# writes when it follows the system prompt's rule ("say you cannot help with that here and
# offer a human colleague").
_REFUSAL_EN = re.compile(
    r"can(?:no|'|’)?t help|can not help|unable to help|not able to help|can(?:no|'|’)?t assist|unable to assist|"
    r"can(?:no|'|’)?t answer|(?:connect|transfer|put) you (?:with|to|through to) (?:a |an |one of our )?"
    r"(?:human|person|colleague|agent|team member)|human colleague|don't have (?:any )?information|"
    r"do not have (?:any )?information|can(?:no|'|’)?t find (?:any )?information|outside (?:of )?(?:what|the scope)",
    re.I)
_REFUSAL_ZH = re.compile(r"无法帮您|无法为您|无法回答|无法解答|帮不了|不能帮您|没办法帮|转接人工|为您转接|没有找到相关|暂时无法")


def is_refusal(reply: str, escalate: bool = False) -> bool:
    """The bot says it can't help / hands the customer to a person."""
    if escalate:
        return True
    text = unicodedata.normalize("NFKC", reply or "").replace("\u2019", "'")
    return bool(_REFUSAL_EN.search(text) or _REFUSAL_ZH.search(text))


def cjk_share(text: str) -> float:
    """Chinese characters / (Chinese characters + Latin letters); 0 for neither."""
    cjk = len(_CJK_CHAR.findall(text or ""))
    latin = len(re.findall(r"[A-Za-z]", unicodedata.normalize("NFKC", text or "")))
    return cjk / (cjk + latin) if cjk + latin else 0.0


def language_ok(reply: str, language: str) -> bool:
    """A Chinese reply is mostly Chinese characters (names like "Lumo Plus", "Apple Pay"
    may stay Latin); an English one has (almost) none."""
    share = cjk_share(reply)
    return share >= 0.5 if language == "zh" else share <= 0.1


def reply_length(reply: str, language: str) -> int:
    """Words for English; characters (without spaces) for Chinese."""
    if language == "zh":
        return len(re.sub(r"\s", "", reply or ""))
    return len((reply or "").split())


# ---------------------------------------------------------------------------------------
# the question set

def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def load_articles(kb_dir: Path = KB_DIR) -> dict[str, dict]:
    """id -> {"title", "body", "language", "text"} of the demo knowledge base's JSONL files."""
    out = {}
    for f in sorted(Path(kb_dir).glob("*.jsonl")):
        for a in read_jsonl(f):
            out[a["id"]] = {"title": a["title"], "body": a["body"], "language": a.get("language"),
                            "text": a["title"] + "\n" + a["body"]}
    return out


def load_questions(paths: list[Path]) -> list[dict]:
    questions = []
    for p in paths:
        for q in read_jsonl(p):
            q["_file"] = Path(p).name
            questions.append(q)
    return questions


def check_set(questions: list[dict], articles: dict[str, dict]) -> list[str]:
    """Everything wrong with the question set, one line each (empty: it passes):
    fields and kinds, unique ids and questions, article ids that exist in the question's
    language, every fact found (one of its alternatives) in one of the question's articles
    unless marked "paraphrase", no contradiction string in those articles."""
    failures = []
    seen_ids: dict[str, str] = {}
    seen_questions: dict[str, str] = {}
    for q in questions:
        qid = q.get("id", "?")
        where = f"{q.get('_file', '')}:{qid}"
        for key in ("id", "language", "question", "kind", "article_ids", "facts"):
            if key not in q:
                failures.append(f"{where}: no {key!r}")
        if qid in seen_ids:
            failures.append(f"{where}: id also in {seen_ids[qid]}")
        seen_ids[qid] = where
        text = normalize(q.get("question", ""))
        if text in seen_questions:
            failures.append(f"{where}: the same question as {seen_questions[text]}")
        seen_questions[text] = where
        lang, kind = q.get("language"), q.get("kind")
        if lang not in ("en", "zh"):
            failures.append(f"{where}: language {lang!r}")
        if kind not in KINDS:
            failures.append(f"{where}: kind {kind!r}")
        ids = q.get("article_ids") or []
        facts = q.get("facts") or []
        if kind == "unanswerable":
            if ids or facts:
                failures.append(f"{where}: unanswerable but has article_ids or facts")
        else:
            if not ids:
                failures.append(f"{where}: no article_ids")
            if not 1 <= len(facts) <= 4:
                failures.append(f"{where}: {len(facts)} facts (want 1-4)")
            if kind == "two_articles" and len(ids) < 2:
                failures.append(f"{where}: two_articles with {len(ids)} article")
        texts = []
        for aid in ids:
            a = articles.get(aid)
            if a is None:
                failures.append(f"{where}: no article {aid!r}")
            elif a["language"] != lang:
                failures.append(f"{where}: article {aid} is {a['language']}, the question {lang}")
            else:
                texts.append(a["text"])
        for fact in facts:
            alts, paraphrase = fact_alternatives(fact)
            if not alts:
                failures.append(f"{where}: an empty fact")
            elif not paraphrase and texts and not any(fact_found(t, fact) for t in texts):
                failures.append(f"{where}: fact {alts} is in none of {ids}")
        for c in q.get("contradictions") or []:
            hit = [aid for aid, t in zip(ids, texts) if contradictions_in(t, [c])]
            if hit:
                failures.append(f"{where}: contradiction {c!r} is in the article {hit[0]}")
    return failures


# ---------------------------------------------------------------------------------------
# asking the server

def ask(client, question: str, *, stream: bool, max_tokens: int | None = None) -> dict:
    """One customer turn in a new conversation: the reply, sources (ids in order),
    escalate, escalation_reason and the seconds it took."""
    body = {"model": "supportbot", "stream": stream, "messages": [{"role": "user", "content": question}]}
    if max_tokens:
        body["max_tokens"] = max_tokens
    sent = time.perf_counter()
    if not stream:
        r = client.post("/v1/chat/completions", json=body)
        if r.status_code != 200:
            return {"error": f"HTTP {r.status_code}: {r.text[:300]}", "seconds": time.perf_counter() - sent}
        data = r.json()
        reply, extras = data["choices"][0]["message"]["content"] or "", data
    else:
        pieces, extras, first = [], {}, None
        with client.stream("POST", "/v1/chat/completions", json=body) as r:
            if r.status_code != 200:
                return {"error": f"HTTP {r.status_code}: {r.read()[:300]!r}", "seconds": time.perf_counter() - sent}
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    return {"error": f"stream: {event['error']}", "seconds": time.perf_counter() - sent}
                choice = event["choices"][0]
                content = choice["delta"].get("content")
                if content:
                    first = first or time.perf_counter()
                    pieces.append(content)
                if choice.get("finish_reason"):
                    extras = event
        reply = "".join(pieces)
    out = {"reply": reply, "sources": [s.get("id") for s in extras.get("sources") or []],
           "escalate": bool(extras.get("escalate")), "escalation_reason": extras.get("escalation_reason"),
           "conversation_id": extras.get("conversation_id"), "seconds": time.perf_counter() - sent}
    if stream and first is not None:
        out["first_text_s"] = first - sent
    return out


def Server(log_path: Path, timeout_s: float = 900) -> ServeProcess:
    """`supportbot serve --no-ui` on a free loopback port with a throwaway home."""
    return ServeProcess(log_path, prefix="eval-answers-", timeout_s=timeout_s)


# ---------------------------------------------------------------------------------------
# scoring

def score(q: dict, answer: dict, articles: dict[str, dict]) -> dict:
    """One question's row: the answer and what it told the customer."""
    expected = list(q.get("article_ids") or [])
    row = {"id": q["id"], "language": q["language"], "kind": q["kind"], "question": q["question"],
           "expected_articles": expected, **{k: answer.get(k) for k in
                                              ("reply", "sources", "escalate", "escalation_reason", "seconds",
                                               "first_text_s", "error") if k in answer}}
    if "error" in answer:
        return row
    reply, sources = answer["reply"], answer["sources"]
    answerable = q["kind"] != "unanswerable"
    texts = [articles[a]["text"] for a in dict.fromkeys(expected + sources) if a in articles]
    found, missed = match_facts(reply, q.get("facts") or [])
    row.update({
        "answerable": answerable,
        "top1": bool(sources) and sources[0] in expected if answerable else None,
        "top3": any(s in expected for s in sources[:3]) if answerable else None,
        "all_articles_returned": all(a in sources for a in expected) if answerable else None,
        "facts_found": found, "facts_missed": missed,
        "invented": invented(reply, texts, q["question"]),
        "contradictions": contradictions_in(reply, q.get("contradictions") or []),
        "refused": is_refusal(reply, answer.get("escalate", False)),
        "language_ok": language_ok(reply, q["language"]),
        "length": reply_length(reply, q["language"]),
    })
    return row


def _share(values) -> float | None:
    values = [bool(v) for v in values]
    return sum(values) / len(values) if values else None


def summarise(rows: list[dict]) -> dict:
    """The metrics of a set of scored rows (see the module's docstring)."""
    ok = [r for r in rows if "error" not in r]
    answerable = [r for r in ok if r["answerable"]]
    unanswerable = [r for r in ok if not r["answerable"]]
    expected = sum(len(r["facts_found"]) + len(r["facts_missed"]) for r in answerable)
    seconds = [r["seconds"] for r in ok]
    two = [r for r in answerable if r["kind"] == "two_articles"]
    return {
        "questions": len(rows), "errors": len(rows) - len(ok),
        "answerable": len(answerable), "unanswerable": len(unanswerable),
        "top1": _share(r["top1"] for r in answerable),
        "top3": _share(r["top3"] for r in answerable),
        "both_articles_returned": _share(r["all_articles_returned"] for r in two),
        "fact_recall": sum(len(r["facts_found"]) for r in answerable) / expected if expected else None,
        "all_facts": _share(not r["facts_missed"] for r in answerable),
        "invented": _share(r["invented"] for r in ok),
        "contradictions": _share(r["contradictions"] for r in ok),
        "refusal_unanswerable": _share(r["refused"] for r in unanswerable),
        "false_refusal": _share(r["refused"] for r in answerable),
        "handed_over": _share(r.get("escalate") for r in ok),
        "language_ok": _share(r["language_ok"] for r in ok),
        "length_median": statistics.median([r["length"] for r in ok]) if ok else None,
        "seconds_median": statistics.median(seconds) if seconds else None,
        "seconds_p90": percentile(seconds, 90),
    }


def summarise_by_language(rows: list[dict]) -> dict:
    out = {lang: summarise([r for r in rows if r["language"] == lang])
           for lang in sorted({r["language"] for r in rows})}
    out["all"] = summarise(rows)
    return out


def summarise_by_kind(rows: list[dict]) -> dict:
    """Per language and kind of question: the main numbers (in the JSON, not the table)."""
    keys = ("questions", "top1", "fact_recall", "all_facts", "refusal_unanswerable", "false_refusal", "handed_over")
    out = {}
    for lang, kind in sorted({(r["language"], r["kind"]) for r in rows}):
        m = summarise([r for r in rows if r["language"] == lang and r["kind"] == kind])
        out[f"{lang}/{kind}"] = {k: m[k] for k in keys}
    return out


COLUMNS = [("n", "questions", "g"), ("top1", "top1", "%"), ("top3", "top3", "%"), ("facts", "fact_recall", "%"),
           ("all facts", "all_facts", "%"), ("invented", "invented", "%"), ("contra", "contradictions", "%"),
           ("refusal", "refusal_unanswerable", "%"), ("false ref", "false_refusal", "%"),
           ("handover", "handed_over", "%"), ("lang ok", "language_ok", "%"), ("len", "length_median", "g"),
           ("s med", "seconds_median", "s"), ("s p90", "seconds_p90", "s")]


def table(summary: dict) -> str:
    def cell(v, fmt):
        if v is None:
            return "-"
        if fmt == "%":
            return f"{v:.0%}"
        if fmt == "s":
            return f"{v:.2f}"
        return f"{v:g}"

    lines = ["language " + " ".join(f"{name:>9}" for name, _, _ in COLUMNS)]
    for lang, m in summary.items():
        lines.append(f"{lang:<8} " + " ".join(f"{cell(m[key], fmt):>9}" for _, key, fmt in COLUMNS))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------

def rescore(args, questions: list[dict], articles: dict[str, dict], paths: list[Path]) -> int:
    """Score an earlier run's replies again (same replies, sources and times) against the
    current question files; questions the run did not ask are left out."""
    earlier = json.loads(args.rescore.read_text(encoding="utf-8"))
    answers = {r["id"]: r for r in earlier["rows"]}
    rows = [score(q, answers[q["id"]], articles) for q in questions if q["id"] in answers]
    summary = summarise_by_language(rows)
    result = {**{k: v for k, v in earlier.items() if k not in ("rows", "summary", "by_kind")},
              "rescored": {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "from": str(args.rescore),
                           "questions_files": [str(p) for p in paths]},
              "summary": summary, "by_kind": summarise_by_kind(rows), "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(table(summary))
    print(f"rescored {len(rows)} replies of {args.rescore}; wrote {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running server, e.g. http://127.0.0.1:7860")
    ap.add_argument("--key", default=os.environ.get("SUPPORTBOT_API_KEY"), help="Bearer API key, if the server has keys")
    ap.add_argument("--start-server", action="store_true", help="start `supportbot serve` of its own (fresh home)")
    ap.add_argument("--split", choices=sorted(SPLITS), default="tune",
                    help="which questions (default: tune; the held-out split only when named)")
    ap.add_argument("--questions", type=Path, action="append", help="question file(s) instead of --split")
    ap.add_argument("--stream", action="store_true", help="SSE instead of one JSON response")
    ap.add_argument("--max-tokens", type=int, help="max_tokens of each turn (default: the server's)")
    ap.add_argument("--limit", type=int, help="only the first N questions")
    ap.add_argument("--json", type=Path, default=ROOT / "runs" / "eval-answers.json")
    ap.add_argument("--check-set", action="store_true", help="check the questions against the knowledge base and exit")
    ap.add_argument("--kb", type=Path, default=KB_DIR, help="the knowledge base's JSONL files (for the checks)")
    ap.add_argument("--rescore", type=Path, metavar="RUN_JSON",
                    help="no server: score the replies of an earlier run again with the current questions "
                         "(after changing facts or contradictions)")
    args = ap.parse_args(argv)

    paths = args.questions or SPLITS[args.split]
    questions = load_questions(paths)
    articles = load_articles(args.kb)
    if args.check_set:
        failures = check_set(questions, articles)
        for f in failures:
            print(f)
        counts = defaultdict(int)
        for q in questions:
            counts[(q["_file"], q["language"])] += 1
        print(", ".join(f"{f} {lang}: {n}" for (f, lang), n in sorted(counts.items())))
        print(f"{len(questions)} questions, {len(failures)} failures")
        return 1 if failures else 0
    if args.limit:
        questions = questions[:args.limit]
    if args.rescore:
        return rescore(args, questions, articles, paths)
    if not args.url and not args.start_server:
        ap.error("give --url of a running server, or --start-server")

    import httpx

    started = time.monotonic()
    server = None
    if args.start_server:
        print("starting the server (the first start converts the packaged models) ...", flush=True)
        server = Server(args.json.parent / "eval-answers-server.log")
    url = server.url if server else args.url.rstrip("/")
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    rows = []
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=300) as client:
            health = client.get("/healthz").json()
            for i, q in enumerate(questions, 1):
                answer = ask(client, q["question"], stream=args.stream, max_tokens=args.max_tokens)
                row = score(q, answer, articles)
                rows.append(row)
                mark = "ERROR " + answer["error"] if "error" in answer else (
                    f"{len(row['facts_found'])}/{len(row['facts_found']) + len(row['facts_missed'])} facts, "
                    f"sources {row['sources']}, {row['seconds']:.1f} s")
                print(f"[{i}/{len(questions)}] {q['id']} {mark}", flush=True)
    finally:
        if server:
            server.close()
    summary = summarise_by_language(rows)
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join([Path(sys.argv[0]).name] + (sys.argv[1:] if argv is None else argv)),
              "server": "started by the script" if server else url, "healthz_models": health.get("models"),
              "stream": args.stream, "questions_files": [str(p) for p in paths],
              "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "load_average_at_end": list(os.getloadavg())},
              "summary": summary, "by_kind": summarise_by_kind(rows), "rows": rows,
              "wall_s": time.monotonic() - started}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))  # before anything else can fail
    print()
    print(table(summary))
    print(f"wrote {args.json} ({result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
