"""Prometheus metrics of the running server (served at /metrics).

    supportbot_http_requests_total{method,route,status}    every HTTP request
    supportbot_http_request_seconds{route}                 their latency
    supportbot_rate_limited_total{route}                   429s of the API rate limit
    supportbot_sentiment_texts_total{label,language}       texts classified by the API
    supportbot_sentiment_batch_size                        texts per sentiment call
    supportbot_turns_total{language}                       customer turns stored (API, UI, CLI)
    supportbot_escalations_total{reason}                   conversations handed to a person
    supportbot_chat_time_to_first_token_seconds{endpoint}  request start -> the chat model's first text
    supportbot_chat_tokens_per_second{endpoint}            decoding speed of each generated reply
    supportbot_chat_generated_tokens_total{endpoint}       tokens the chat model wrote
    supportbot_chat_batch_queue_depth                      replies in the continuous batcher (decoding + waiting)
    supportbot_chat_batch_waiting                          of those, waiting for a decoding slot
    supportbot_retrain_runs_total{task,outcome}            retrain outcomes (promoted, rejected, skipped, failed, busy)

`endpoint` is `pipeline` (model "supportbot": a customer turn) or `plain` (the chat model
by its name). Turns and escalations are counted when they are committed to the database
(SQLAlchemy session events), so every way in (API, /chat, the staff UI, the CLI) counts
and a rolled-back turn does not.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter("supportbot_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=REGISTRY)
HTTP_LATENCY = Histogram("supportbot_http_request_seconds", "HTTP request latency", ["route"], registry=REGISTRY)
RATE_LIMITED = Counter("supportbot_rate_limited_total", "Requests refused with 429 by the API rate limit", ["route"],
                       registry=REGISTRY)
SENTIMENT_TEXTS = Counter("supportbot_sentiment_texts_total", "Texts classified", ["label", "language"], registry=REGISTRY)
SENTIMENT_BATCH = Histogram("supportbot_sentiment_batch_size", "Texts per sentiment call",
                            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=REGISTRY)

TURNS = Counter("supportbot_turns_total", "Customer turns stored", ["language"], registry=REGISTRY)
ESCALATIONS = Counter("supportbot_escalations_total", "Conversations handed to a person", ["reason"],
                      registry=REGISTRY)

TIME_TO_FIRST_TOKEN = Histogram(
    "supportbot_chat_time_to_first_token_seconds", "From the request's start to the chat model's first text piece",
    ["endpoint"], buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 13, 20, 30, 60), registry=REGISTRY)
TOKENS_PER_SECOND = Histogram(
    "supportbot_chat_tokens_per_second", "Tokens per second of each generated reply (first piece to last)",
    ["endpoint"], buckets=(1, 2, 5, 10, 15, 20, 30, 50, 75, 100, 200, 500, 1000), registry=REGISTRY)
GENERATED_TOKENS = Counter("supportbot_chat_generated_tokens_total", "Tokens written by the chat model", ["endpoint"],
                           registry=REGISTRY)

BATCH_QUEUE_DEPTH = Gauge("supportbot_chat_batch_queue_depth",
                          "Replies in the continuous batcher, decoding or waiting for a slot", registry=REGISTRY)
BATCH_WAITING = Gauge("supportbot_chat_batch_waiting", "Replies waiting for a decoding slot in the continuous batcher",
                      registry=REGISTRY)

RETRAIN_RUNS = Counter("supportbot_retrain_runs_total", "Retrain outcomes per task", ["task", "outcome"],
                       registry=REGISTRY)


def observe_generation(endpoint: str, *, first_piece_s: float | None, tokens: int, decode_s: float) -> None:
    """One generated reply: time to its first piece (from the request's start), its tokens,
    and the time from its first piece to its last."""
    if first_piece_s is not None:
        TIME_TO_FIRST_TOKEN.labels(endpoint).observe(first_piece_s)
    if tokens > 0:
        GENERATED_TOKENS.labels(endpoint).inc(tokens)
    if tokens > 1 and decode_s > 0:
        TOKENS_PER_SECOND.labels(endpoint).observe((tokens - 1) / decode_s)  # the first token is the TTFT's


_PENDING = "supportbot_metrics_pending"


def _watch_storage() -> None:
    """Count turns and escalations when their transaction commits."""
    from sqlalchemy import event, inspect
    from sqlalchemy.orm import Session

    from storage.models import Conversation, Message

    @event.listens_for(Session, "before_flush")
    def _seen(session, _context, _instances) -> None:
        pending = session.info.setdefault(_PENDING, [])
        for obj in session.new:
            if isinstance(obj, Message) and obj.role == "customer":
                pending.append((TURNS, obj.language or "unknown"))
            elif isinstance(obj, Conversation) and obj.status == "escalated":
                pending.append((ESCALATIONS, obj.escalation_reason or "unknown"))
        for obj in session.dirty:
            if isinstance(obj, Conversation) and "escalated" in inspect(obj).attrs.status.history.added:
                pending.append((ESCALATIONS, obj.escalation_reason or "unknown"))

    @event.listens_for(Session, "after_commit")
    def _committed(session) -> None:
        for counter, label in session.info.pop(_PENDING, ()):
            counter.labels(label).inc()

    @event.listens_for(Session, "after_rollback")
    def _rolled_back(session) -> None:
        session.info.pop(_PENDING, None)


_watch_storage()
