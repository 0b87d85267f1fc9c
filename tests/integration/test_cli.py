"""`supportbot sentiment` as a user runs it, with the shipped models."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.conftest import REPO, product_env

pytestmark = pytest.mark.slow


def run_cli(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=product_env(tmp_path),
                          capture_output=True, text=True, cwd=REPO, timeout=900)


def test_sentiment_command_prints_label_and_score(tmp_path):
    out = run_cli(tmp_path, "sentiment", "The refund took forever", "这部电影很无聊。")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].split()[0] == "negative" and "[en]" in lines[0]
    assert lines[1].split()[0] == "negative" and "[zh]" in lines[1]
    assert 0.0 < float(lines[0].split()[1]) <= 1.0


def test_sentiment_command_json_matches_api_objects(tmp_path):
    out = run_cli(tmp_path, "sentiment", "--json", "这部电影的剧情非常好。")
    assert out.returncode == 0, out.stderr[-2000:]
    body = json.loads(out.stdout)
    (result,) = body["results"]
    assert result["label"] == "positive" and result["language"] == "zh"
    assert set(result["scores"]) == {"negative", "neutral", "positive"}


def test_sentiment_command_bad_input_is_one_line(tmp_path):
    out = run_cli(tmp_path, "sentiment", "   ")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "empty" in out.stderr
