"""scripts/bench_serve.py reads what `serve` logs about its start (app/startup.py), and
scripts/bench_report.py turns its JSON into the README's rows (before/after, cold/warm)."""

import importlib.util
from pathlib import Path

import pytest

from app import startup

REPO = Path(__file__).resolve().parents[2]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _script("bench_serve")


def test_it_reads_the_lines_serve_logs(bench, tmp_path):
    converted = startup.ready_line(71.44, {"me5-small": 14.0, "smollm2-135m": 38.0}, tmp_path, 0)
    log = (f"2026-01-01 10:00:00,000 INFO app.startup: {converted}\n"
           "2026-01-01 10:00:05,000 INFO app.startup [ab12]: first sentiment answer sent 80.2 s after the process started\n"
           "2026-01-01 10:00:09,000 INFO app.startup [cd34]: first chat reply sent 84.9 s after the process started\n")
    assert bench.server_log_times(log) == {"models_ready_s": 71.4, "converting_s": 52.0, "first_sentiment_s": 80.2,
                                           "first_chat_s": 84.9}
    warm = startup.ready_line(9.8, {}, tmp_path, 3)
    assert bench.server_log_times(warm) == {"models_ready_s": 9.8, "converting_s": 0.0}


def test_the_workload_is_fixed_and_in_both_languages(bench):
    texts = bench.sentiment_texts(200)
    assert len(texts) == 200 and texts == bench.sentiment_texts(200)
    assert sum(any("\u4e00" <= c <= "\u9fff" for c in t) for t in texts) == 100


def _start(ready, chat, converting, peak):
    return {"ready_s": ready, "first_sentiment_s": ready + 1, "first_chat_s": chat, "peak_rss_mib": {"total": peak},
            "server_log": {"converting_s": converting},
            "workload": {"sentiment_texts": 200, "texts_per_s": 50.0, "chat_median_s_en": 2.5, "chat_median_s_zh": 0.4}}


def test_the_report_rows_put_today_against_the_previous_defaults():
    report = _script("bench_report")
    data = {"configs": {"before": {"cold": _start(150.0, 170.0, 120.0, 4000.0), "warm": _start(30.0, 40.0, 0.0, 3000.0)},
                        "after": {"cold": _start(40.0, 45.0, 20.0, 2000.0), "warm": _start(12.0, 15.0, 0.0, 1500.0)}}}
    rows = report.serve_rows(data)
    cold = next(r for r in rows if r[0].startswith("serve, cold start"))
    assert cold[1:4] == ("40.0 / 41.0 / 45.0", "150.0 / 151.0 / 170.0", f"{45 / 170:.2f}×")
    assert [r[1:3] for r in rows if "converting" in r[0]] == [("20", "120"), ("0", "0")]
    peak = next(r for r in rows if r[0].startswith("serve, warm start: peak RSS"))
    assert peak[1:4] == ("1500", "3000", "0.50×")
    assert rows[-1][1] == "50.0; 2.50 / 0.40"
    only_after = report.serve_rows({"configs": {"after": {"warm": _start(12.0, 15.0, 0.0, 1500.0)}}})
    assert only_after[0][1:4] == ("12.0 / 13.0 / 15.0", "", "")
