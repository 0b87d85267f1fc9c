"""Regression floors for the shipped sentiment models on the public benchmarks.

Runs `supportbot eval classifier` on SST-2 dev and a slice of ChnSentiCorp test when the
datasets are present (CI sets SUPPORTBOT_TEST_DATASETS); skipped otherwise. The full
numbers are in the README, measured with the same command.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import REPO, product_env

pytestmark = pytest.mark.slow

DATASETS = Path(os.environ.get("SUPPORTBOT_TEST_DATASETS", REPO.parent / "shared" / "datasets"))
BIN = {"0": "negative", "1": "positive"}


def _need(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"dataset {path} not present (set SUPPORTBOT_TEST_DATASETS to ../shared/datasets)")
    return path


def _binary_csv(src: Path, dest: Path, text_col: str, limit: int | None = None) -> Path:
    with open(src, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))[:limit]
    with open(dest, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows((r[text_col].strip(), BIN[r["label"]]) for r in rows)
    return dest


def _eval(tmp_path: Path, data: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "app.cli", "eval", "classifier", "--task", "sentiment",
                          "--data", str(data), "--json"], env=product_env(tmp_path), capture_output=True,
                         text=True, cwd=REPO, timeout=1200)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_sst2_dev_accuracy_floor(tmp_path):
    data = _binary_csv(_need(DATASETS / "sst2" / "dev.tsv"), tmp_path / "sst2.csv", "sentence")
    report = _eval(tmp_path, data)
    assert report["n"] == 872
    assert report["accuracy"] >= 0.85, report["accuracy"]


def test_chnsenticorp_test_accuracy_floor(tmp_path):
    data = _binary_csv(_need(DATASETS / "chnsenticorp" / "test.tsv"), tmp_path / "csc.csv", "text_a", limit=300)
    report = _eval(tmp_path, data)
    assert report["n"] == 300
    assert report["accuracy"] >= 0.85, report["accuracy"]
