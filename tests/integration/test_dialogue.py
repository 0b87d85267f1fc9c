"""The dialogue end to end against the real server: shipped models, the demo knowledge
base imported on first start, the default chat model."""

from __future__ import annotations

import re

import httpx
import openai
import pytest

pytestmark = pytest.mark.slow

_HAN = re.compile(r"[\u4e00-\u9fff]")


def post(server, path, body=None):
    r = httpx.post(server["url"] + path, json=body, timeout=300)
    assert r.status_code in (200, 201), r.text
    return r.json()


def test_english_and_chinese_conversations_are_grounded_and_escalate_to_an_agent(server):
    en = post(server, "/v1/conversations", {"channel": "test"})["id"]
    turn = post(server, f"/v1/conversations/{en}/messages", {"text": "How many days do I have to return an item?"})
    assert turn["reply"]["sources"] and turn["reply"]["sources"][0]["id"].startswith("en-")
    assert turn["reply"]["text"].strip() and not _HAN.search(turn["reply"]["text"])
    assert turn["intent"]["label"]

    zh = post(server, "/v1/conversations")["id"]
    turn = post(server, f"/v1/conversations/{zh}/messages", {"text": "买的衣服不喜欢，可以退货吗？"})
    assert turn["reply"]["sources"][0]["id"].startswith("zh-")
    assert _HAN.search(turn["reply"]["text"])
    handoff = post(server, f"/v1/conversations/{zh}/messages", {"text": "我要转人工"})
    assert handoff["escalate"] and handoff["escalation_reason"] == "customer_request"
    assert post(server, f"/v1/conversations/{zh}/messages", {"text": "在吗？"})["reply"] is None
    post(server, f"/v1/conversations/{zh}/agent-messages", {"text": "您好，我是客服小李。", "agent": "li"})

    handoff = post(server, f"/v1/conversations/{en}/messages", {"text": "I want to talk to a human"})
    assert handoff["escalation_reason"] == "customer_request"
    post(server, f"/v1/conversations/{en}/agent-messages", {"text": "Hi, this is Ana.", "agent": "ana"})

    history = httpx.get(server["url"] + f"/v1/conversations/{zh}", timeout=30).json()
    assert history["status"] == "escalated" and history["escalation_reason"] == "customer_request"
    assert [m["role"] for m in history["messages"]] == ["customer", "bot", "customer", "bot", "customer", "agent"]
    assert history["messages"][-1]["text"] == "您好，我是客服小李。"
    assert all("sentiment" in m for m in history["messages"] if m["role"] == "customer")


def test_the_openai_client_against_the_real_server(server):
    client = openai.OpenAI(base_url=server["url"] + "/v1", api_key="unused", timeout=300)
    models = [m.id for m in client.models.list()]
    assert models[0] == "supportbot" and len(models) == 2
    done = client.chat.completions.create(model="supportbot", max_tokens=40,
                                          messages=[{"role": "user", "content": "How do I reset my password?"}])
    assert done.choices[0].message.content.strip()
    assert done.model_extra["sources"] and done.model_extra["conversation_id"]
    stream = client.chat.completions.create(model="supportbot", max_tokens=40, stream=True,
                                            messages=[{"role": "user", "content": "Which payment methods do you accept?"}])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices).strip()
