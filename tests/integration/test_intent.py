"""The shipped intent model (Bitext's 27 customer-service intents) on hand-written requests."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from tests.integration.conftest import REPO, product_env

pytestmark = pytest.mark.slow

REQUESTS = [
    ("I want to cancel my order please", "cancel_order"),
    ("where is my package? it has not arrived", "track_order"),
    ("I'd like to talk to a real person", "contact_human_agent"),
    ("how do I get my money back", "get_refund"),
    ("I forgot my password and can't log in", "recover_password"),
    ("can I get an invoice for my purchase", "get_invoice"),
]


def test_shipped_intent_model_on_written_requests(tmp_path):
    data = tmp_path / "intents.csv"
    with open(data, "w", newline="") as fh:
        csv.writer(fh).writerows([("text", "label"), *REQUESTS])
    out = subprocess.run([sys.executable, "-m", "app.cli", "eval", "classifier", "--task", "intent",
                          "--model", "intent-bitext", "--data", str(data), "--json"],
                         env=product_env(tmp_path), capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["n"] == len(REQUESTS)
    assert report["accuracy"] >= 5 / 6, report["confusion_matrix"]
