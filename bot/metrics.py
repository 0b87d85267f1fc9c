"""Prometheus metrics of the running server (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter("supportbot_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=REGISTRY)
HTTP_LATENCY = Histogram("supportbot_http_request_seconds", "HTTP request latency", ["route"], registry=REGISTRY)
SENTIMENT_TEXTS = Counter("supportbot_sentiment_texts_total", "Texts classified", ["label", "language"], registry=REGISTRY)
SENTIMENT_BATCH = Histogram("supportbot_sentiment_batch_size", "Texts per sentiment call",
                            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=REGISTRY)
