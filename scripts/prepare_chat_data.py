"""Build chat fine-tuning files (chat JSONL, OpenAI format) from the public datasets.

    python scripts/prepare_chat_data.py --datasets ../shared/datasets --out data/chat

Writes one {"messages": [system, user, assistant, ...]} per line, every conversation with the
same system message (SYSTEM):
  bitext_train.jsonl, bitext_test.jsonl     Bitext customer support, instruction -> response;
                                            our own held-out split, stratified by intent
                                            (--test-fraction). Bitext's {{Placeholder}} slots
                                            become generic phrases ("our website", "your order
                                            number"), so a model never learns to write {{...}}.
  stc3_zh_train.jsonl, stc3_zh_test.jsonl   STC-3 Chinese Weibo helpdesk dialogues as published:
                                            customer -> user, helpdesk -> assistant, consecutive
                                            turns of one sender merged, empty turns dropped,
                                            dialogues without a helpdesk reply dropped.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from collections import defaultdict
from pathlib import Path

SYSTEM = ("You are the customer service assistant of Lumo Shop, an online shop. "
          "Answer briefly and politely in the customer's language.")

# ---- Bitext placeholders ------------------------------------------------------------------
# Slots standing for a concrete value (contact details, names, numbers): a generic phrase and the
# determiner it takes when the text has none. Matched on the lower-cased slot without "anonymized".
VALUE_SLOTS: list[tuple[re.Pattern, str, str]] = [
    (re.compile(r"\bemail\b.*\bphone\b"), "customer service email address or phone number", "our"),
    (re.compile(r"\bphone number\b|^phone$|^phone support$"), "customer service phone number", "our"),
    (re.compile(r"\bemail\b"), "customer service email address", "our"),
    (re.compile(r"^(live )?chat$"), "live chat", "our"),
    (re.compile(r"^(website|website name|website url|company website|service website|website/app name)$"), "website", "our"),
    (re.compile(r"^website or app$"), "website or app", "our"),
    (re.compile(r"^mobile app( name)?$"), "app", "our"),
    (re.compile(r"^(order|purchase) (number|id)$|^[0-9a-f]{8,}$"), "order number", "your"),
    (re.compile(r"^tracking number$"), "tracking number", "your"),
    (re.compile(r"^(bill|invoice) number$"), "invoice number", "your"),
    (re.compile(r"^purchase date$"), "purchase date", "the"),
    (re.compile(r"^payment method$"), "payment method", "your"),
]
HOURS_SLOT = re.compile(r"availability|hours")  # "They are available {{Customer Support Hours}}"
DETERMINERS = {"the", "a", "an", "our", "your", "my", "this", "that", "its", "their", "his", "her"}
UI_NOUNS = {"section", "button", "tab", "page", "link", "option", "field", "menu", "icon", "form", "area"}

# Whole phrases around slots, rewritten before the slot-by-slot pass.
PHRASES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"\{\{Company Name\}\}"), "Lumo Shop"),
    (re.compile(r"\{\{Website Name\}\}(?= account)"), "Lumo Shop"),  # "your {{Website Name}} account"
    (re.compile(r"\bare from \{\{[^{}]*Start Time\}\} to \{\{[^{}]*End Time\}\}", re.I), "are listed on our website"),
    (re.compile(r"\bfrom \{\{[^{}]*Start Time\}\} to \{\{[^{}]*End Time\}\}(?: on \{\{days of the week\}\})?", re.I),
     "during our business hours"),
    (re.compile(r"\bfrom \{\{[^{}]*(?:hours|availability)\}\}", re.I), "during our business hours"),
    (re.compile(r"\{\{X(?: to Y)?\}\}"), "a few"),  # "within [X to Y] business days", "within [X] days"
    (re.compile(r"\{\{response time\}\}", re.I), "a short time"),
    (re.compile(r"\bwebsite,? (?:at )?\{\{[^{}]*Website[^{}]*\}\}"), "website"),  # "our website, {{Website Name}}"
    # An order's number: "with the (order) number {{X}}" -> "with your order number"; elsewhere
    # the number stands for the order: "cancel order number {{X}}" -> "cancel your order".
    (re.compile(r"\bwith (?:the |your )?(?:(?:order|purchase) )?(?:number|ID) \{\{(?:(?:Order|Purchase) (?:Number|ID)"
                r"(?: Anonymized)?|[0-9A-Fa-f]{8,})\}\}"), "with your order number"),
    (re.compile(r"(?:(?:the|your) )?(?:order|purchase) (?:number|ID) \{\{(?:(?:Order|Purchase) (?:Number|ID)"
                r"(?: Anonymized)?|[0-9A-Fa-f]{8,})\}\}"), "your order"),
    (re.compile(r"(?:(?:the|your) )?(?:(?:bill|invoice) )?number \{\{(?:Bill|Invoice) Number Anonymized\}\}"),
     "your invoice number"),
    (re.compile(r",?\s*\{\{Name Field Anonymized\}\}(?=,)"), ""),  # "Don't worry, {{Name}}, I'm here"
    (re.compile(r"\{\{number of days\}\}-day"), "limited-time"),
    (re.compile(r"\{\{number of days\}\}"), "a few"),  # "within {{number of days}} days"
    (re.compile(r"\{\{Percentage or Full\}\}"), "partial or full"),
    (re.compile(r"(?:platforms )?such as \{\{Review Website 1\}\}, \{\{Review Website 2\}\},? or \{\{Review Website 3\}\}"),
     "popular review platforms"),
]
SLOT = re.compile(r"\{\{(.*?)\}\}")
# A few responses use [Slot] instead, or end with a generation leftover; \r\n line ends.
BRACKET_SLOT = re.compile(r"\[(?:\{\{)?([A-Za-z][A-Za-z ]{0,40})(?:\}\})?\](?!\()")
LEFTOVER = re.compile(r"^\[continue answering[^\]]*\]\s*$", re.I | re.M)
LIST_JOINER = re.compile(r"\s*(,\s*(or|and)?|or|and|/)\s*")  # between two slots of one list
ITEM_START = re.compile(r"(^|\n|:)\s*([-*•]|\d+\.)?\s*$")  # a line, a list item, after a colon


def _slot_text(raw: str, before: str, after: str, list_style: str | None) -> tuple[str, str]:
    """The replacement for one slot and its style ("plain", "quoted" or "as-is"), from its
    surroundings; list_style: the style of the slot before it in the same list ("X, Y or Z")."""
    slot = raw.strip().strip('"')
    key = re.sub(r"\s+anonymized$", "", slot.lower()).strip()
    words = before.split()
    prev = words[-1].lower() if words else ""
    has_determiner = prev in DETERMINERS
    in_list = prev in ("or", "and") or before.rstrip().endswith((",", "/"))
    if HOURS_SLOT.search(key) and "phone" not in key and "email" not in key:
        if prev in ("during", "within"):
            return "our business hours", "plain"
        if prev == "are" and (after.startswith(".") or not after.strip()):
            return "listed on our website", "plain"
        return ("business hours" if has_determiner else "during our business hours"), "plain"
    for pattern, phrase, determiner in VALUE_SLOTS:
        if pattern.search(key):
            return (phrase if has_determiner or in_list else f"{determiner} {phrase}"), "plain"
    # A UI label ("Order History", "Cancel Order") or anything else: lower-cased after a
    # determiner or before a UI noun ("the order history section"); kept as written where it
    # is quoted already or starts a line or list item ("1. Money Back Guarantee: ..."); quoted
    # elsewhere ('a button labeled "Cancel Order"').
    next_word = (after.split() or [""])[0].lower().strip(".,:;")
    if before.endswith(('"', "'", "\u201c")):
        return slot, "as-is"
    if list_style:
        style = list_style
    elif has_determiner or next_word in UI_NOUNS:
        style = "plain"
    elif ITEM_START.search(before):
        style = "as-is"
    else:
        style = "quoted"
    if style == "plain":
        return (slot.lower() if has_determiner or in_list else f"the {slot.lower()}"), style
    return (slot if style == "as-is" else f'"{slot}"'), style


def replace_placeholders(text: str) -> str:
    """Bitext's {{Slot}} placeholders -> natural generic phrases; no braces are left."""
    text = LEFTOVER.sub("", text.replace("\r\n", "\n"))
    text = BRACKET_SLOT.sub(r"{{\1}}", text.replace("[email protected]", "{{Customer Support Email}}"))
    for pattern, replacement in PHRASES:
        text = pattern.sub(replacement, text)
    out, last, style = [], 0, None
    for match in SLOT.finditer(text):
        between = text[last : match.start()]
        list_style = style if last and LIST_JOINER.fullmatch(between) else None
        replacement, style = _slot_text(match.group(1), text[: match.start()], text[match.end() :], list_style)
        out += [between, replacement]
        last = match.end()
    out.append(text[last:])
    text = re.sub(r"(?<=\S)  +", " ", "".join(out).replace("{{", "").replace("}}", ""))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def chat(user: str, assistant: str) -> dict:
    return {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user},
                         {"role": "assistant", "content": assistant}]}


def bitext(csv_path: Path, test_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    by_intent: dict[str, dict[str, str]] = defaultdict(dict)
    with open(csv_path, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            instruction, response = r["instruction"].strip(), r["response"].strip()
            if instruction and response:
                by_intent[r["intent"]].setdefault(instruction, replace_placeholders(response))
    rng = random.Random(seed)
    train, test = [], []
    for intent, pairs in sorted(by_intent.items()):
        instructions = sorted(pairs)
        rng.shuffle(instructions)
        k = max(1, round(len(instructions) * test_fraction))
        test += [(chat(i, pairs[i]), intent) for i in instructions[:k]]
        train += [(chat(i, pairs[i]), intent) for i in instructions[k:]]
    rng.shuffle(train)
    return train, test


def grounded(conversations: list[dict], pool: dict[str, list[str]], intents: list[str], seed: int) -> list[dict]:
    """The same conversations in the dialogue's own prompt format: the system message is
    the one bot.prompting builds, holding a knowledge-base "article" made of another reply
    to the same intent (first sentences). The model learns to answer from the article it
    is given, as it must at serve time."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bot.prompting import system_message
    from bot.retrieval import Hit

    rng = random.Random(seed)
    out = []
    for conversation, intent in zip(conversations, intents):
        reply = conversation["messages"][-1]["content"]
        others = [r for r in pool[intent] if r != reply] or [reply]
        body = " ".join(re.findall(r"[^.!?]+[.!?]*", rng.choice(others).replace("\n", " "))[:4]).strip()
        hit = Hit(intent, intent.replace("_", " ").capitalize(), body, "en", 1.0)
        system = {"role": "system", "content": system_message([hit], language="en", upset=False)}
        out.append({"messages": [system, *conversation["messages"][1:]]})
    return out


def stc3(json_path: Path) -> tuple[list[dict], int]:
    """Dialogues as chat conversations, and how many were dropped (no helpdesk reply)."""
    roles = {"customer": "user", "helpdesk": "assistant"}
    conversations, dropped = [], 0
    for dialogue in json.loads(json_path.read_text(encoding="utf-8")):
        messages: list[dict] = []
        for turn in dialogue["turns"]:
            content = "\n".join(u.strip() for u in turn["utterances"] if u.strip())
            if not content:
                continue
            role = roles[turn["sender"]]
            if messages and messages[-1]["role"] == role:
                messages[-1]["content"] += "\n" + content
            else:
                messages.append({"role": role, "content": content})
        while messages and messages[0]["role"] == "assistant":  # a reply to nothing
            messages.pop(0)
        while messages and messages[-1]["role"] == "user":  # unanswered: nothing to learn
            messages.pop()
        if not messages:
            dropped += 1
            continue
        conversations.append({"messages": [{"role": "system", "content": SYSTEM}, *messages]})
    return conversations, dropped


def write(path: Path, conversations: list[dict], note: str = "") -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for c in conversations:
            fh.write(json.dumps(c, ensure_ascii=False) + "\n")
    print(f"{path}: {len(conversations)} conversations{note}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--test-fraction", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)

    train, test = bitext(a.datasets / "bitext_customer_support/Bitext_Sample_Customer_Support_Training_Dataset.csv",
                         a.test_fraction, a.seed)
    write(a.out / "bitext_train.jsonl", [c for c, _ in train])
    write(a.out / "bitext_test.jsonl", [c for c, _ in test])
    # grounded: articles come from training replies only, so the test replies stay unseen
    pool: dict[str, list[str]] = defaultdict(list)
    for c, intent in train:
        pool[intent].append(c["messages"][-1]["content"])
    for name, rows in (("train", train), ("test", test)):
        write(a.out / f"bitext_grounded_{name}.jsonl",
              grounded([c for c, _ in rows], pool, [i for _, i in rows], a.seed))

    for split in ("train", "test"):
        path = a.datasets / f"stc3_helpdesk/{split}_data_cn.json"
        if path.is_file():
            conversations, dropped = stc3(path)
            write(a.out / f"stc3_zh_{split}.jsonl", conversations,
                  f" ({dropped} dialogues without a helpdesk reply dropped)")


if __name__ == "__main__":
    main()
