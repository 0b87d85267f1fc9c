"""scripts/bench_report.py: the README's performance table says met/missed from the JSON the
benchmarks write (the committed run in docs/bench/, and a changed copy of it)."""

import copy
import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("bench_report", REPO / "scripts" / "bench_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(rows, start):
    return next(r for r in rows if r[0].startswith(start))


def test_the_committed_run_gives_a_row_per_target(report):
    chat = json.loads((REPO / "docs/bench/bench-chat.json").read_text())
    rows = report.chat_rows(chat)
    for engine, e in chat["engines"].items():  # bench_chat.py measures each engine
        ttft = _row(rows, f"chat ({engine}): time to first token")
        ratio = e["http"]["ttft_s"] / e["baseline"]["prefill_s"]
        assert ttft[3] == f"{ratio:.2f}×" and ttft[5] == report._met(ratio <= 1.2)
    both = _row(rows, "chat: streamed tokens/s over HTTP, llama.cpp vs torch")
    engines = chat["engines"]
    assert both[1] == f"{engines['llama_cpp']['http']['tokens_per_s']:.1f}"
    assert both[2] == f"{engines['torch']['http']['tokens_per_s']:.1f}"
    sentiment = json.loads((REPO / "docs/bench/bench-sentiment.json").read_text())
    previous = _row(report.sentiment_rows(sentiment), "sentiment throughput, 2,000 texts over HTTP vs the previous")
    ratio = sentiment["throughput"]["ours"]["all"]["texts_per_s"] / sentiment["previous"]["all"]["texts_per_s"]
    assert previous[3] == f"{ratio:.2f}×" and previous[5] == report._met(ratio >= 10)
    load = report.load_rows(json.loads((REPO / "docs/bench/bench-load.json").read_text()))
    assert len(load) == 2 and all("0 errors" in r[5] for r in load)


def test_a_missed_target_says_missed(report):
    chat = json.loads((REPO / "docs/bench/bench-chat.json").read_text())
    slow = copy.deepcopy(chat)
    e = slow["engines"]["llama_cpp"]
    e["ratios"]["concurrent_over_one"] = 1.2
    e["concurrency"]["batched"]["tokens_per_s"] = 1.2 * e["concurrency"]["one_tokens_per_s"]
    assert _row(report.chat_rows(slow), "chat (llama_cpp): 4 concurrent")[5] == "**missed**"
    fast = copy.deepcopy(chat)
    fast["engines"]["llama_cpp"]["ratios"]["concurrent_over_one"] = 2.0
    assert _row(report.chat_rows(fast), "chat (llama_cpp): 4 concurrent")[5] == "met"
    sentiment = json.loads((REPO / "docs/bench/bench-sentiment.json").read_text())
    sentiment["previous"]["all"]["texts_per_s"] = sentiment["throughput"]["ours"]["all"]["texts_per_s"] / 10.5
    assert _row(report.sentiment_rows(sentiment), "sentiment throughput, 2,000 texts over HTTP vs the previous")[5] == "met"
    load = json.loads((REPO / "docs/bench/bench-load.json").read_text())
    load["runs"][0]["found"] = load["runs"][0]["acked"] - 1
    assert "missed" in report.load_rows(load)[0][5]


def test_main_prints_the_table_and_names_missing_runs(report, tmp_path, capsys, monkeypatch):
    (tmp_path / "bench-chat.json").write_text((REPO / "docs/bench/bench-chat.json").read_text())
    monkeypatch.setattr("sys.argv", ["bench_report.py", str(tmp_path)])
    assert report.main() == 0
    out = capsys.readouterr().out
    assert out.startswith("| measured |") and "chat: streamed tokens/s" in out
    assert "not run: bench_sentiment.py" in out
    monkeypatch.setattr("sys.argv", ["bench_report.py", str(tmp_path / "empty")])
    assert report.main() == 1
