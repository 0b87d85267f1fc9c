"""The dialogue's "done when", against a running server (e.g. a fresh `make run`):

an English and a Chinese conversation get grounded, same-language answers with sources;
"I want to talk to a human" / "我要转人工" escalate; an agent's reply reaches the
conversation; everything is visible through GET /v1/conversations/{id}.

    python scripts/smoke_dialogue.py --url http://127.0.0.1:7860 [--wait 900]

Prints each step with its time and exits non-zero at the first failed check.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time

import httpx

CONVERSATIONS = {
    "en": ("How long does standard shipping take?", "I want to talk to a human"),
    "zh": ("退货需要多长时间退款？", "我要转人工"),
}


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:7860")
    ap.add_argument("--wait", type=float, default=0, help="seconds to wait for /healthz first")
    ap.add_argument("--key", help="API key, when keys exist")
    a = ap.parse_args(argv)
    headers = {"Authorization": f"Bearer {a.key}"} if a.key else {}
    client = httpx.Client(base_url=a.url, headers=headers, timeout=180)
    t0 = time.monotonic()
    while True:
        try:
            if client.get("/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() - t0 > a.wait:
            check(False, f"{a.url}/healthz not ok after {a.wait:.0f} s")
        time.sleep(2)
    report = {"healthz_after_s": round(time.monotonic() - t0, 1)}
    for lang, (question, handoff) in CONVERSATIONS.items():
        cid = client.post("/v1/conversations", json={"channel": "smoke"}).json()["id"]
        t = time.monotonic()
        turn = client.post(f"/v1/conversations/{cid}/messages", json={"text": question}).json()
        report[f"{lang}_first_turn_s"] = round(time.monotonic() - t, 2)
        reply = turn.get("reply") or {}
        print(f"[{lang}] {question}\n  -> {reply.get('text', '')[:300]!r}\n  sources: {reply.get('sources')}")
        check(bool(reply.get("sources")), f"{lang}: the answer cites a source")
        is_zh = bool(re.search(r"[\u4e00-\u9fff]", reply.get("text", "")))
        check(is_zh == (lang == "zh"), f"{lang}: the answer is in the customer's language")
        turn = client.post(f"/v1/conversations/{cid}/messages", json={"text": handoff}).json()
        print(f"[{lang}] {handoff} -> escalate={turn['escalate']} reason={turn['escalation_reason']}")
        check(turn["escalate"] and turn["status"] == "escalated", f"{lang}: the handoff request escalates")
        agent_text = "Hi, this is Ana from support: I am on it." if lang == "en" else "您好，我是客服小李，马上为您处理。"
        r = client.post(f"/v1/conversations/{cid}/agent-messages", json={"text": agent_text, "agent": "ana"})
        check(r.status_code == 201, f"{lang}: agent message accepted ({r.status_code})")
        history = client.get(f"/v1/conversations/{cid}").json()
        roles = [m["role"] for m in history["messages"]]
        print(f"[{lang}] GET /v1/conversations/{cid}: status={history['status']} roles={roles}")
        check(history["status"] == "escalated" and roles[-1] == "agent"
              and history["messages"][-1]["text"] == agent_text, f"{lang}: the agent's reply is in the conversation")
        check(all("sentiment" in m for m in history["messages"] if m["role"] == "customer"),
              f"{lang}: customer turns carry their sentiment")
    report["total_s"] = round(time.monotonic() - t0, 1)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
