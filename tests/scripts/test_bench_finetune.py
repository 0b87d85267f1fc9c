"""The non-timing pieces of scripts/bench_finetune.py: reading /proc status and fixed-length batches."""

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_finetune", REPO / "scripts" / "bench_finetune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STATUS = """Name:\tpython
Umask:\t0022
State:\tR (running)
VmPeak:\t 3060 kB
VmHWM:\t    1776 kB
VmRSS:\t    1700 kB
RssAnon:\t     112 kB
RssFile:\t    1588 kB
Threads:\t1
Cpus_allowed_list:\t0-1
"""


def test_parse_status_reads_kb_fields_as_bytes(bench):
    fields = bench.parse_status(STATUS)
    assert fields == {"VmPeak": 3060 * 1024, "VmHWM": 1776 * 1024, "VmRSS": 1700 * 1024,
                      "RssAnon": 112 * 1024, "RssFile": 1588 * 1024}


def test_status_of_this_process_has_the_fields_the_bench_reads(bench):
    fields = bench.status()
    assert {"VmRSS", "VmHWM", "RssAnon", "RssFile"} <= set(fields)
    assert fields["VmHWM"] >= fields["VmRSS"] > 0


def test_fixed_length_batch_cuts_and_pads_to_exactly_the_length(bench):
    from finetune.chat_data import IGNORE_INDEX

    items = [([5, 6, 7, 8, 9, 10], [IGNORE_INDEX, IGNORE_INDEX, 7, 8, 9, 10]), ([5, 6], [IGNORE_INDEX, 6])]
    batch = bench.fixed_length_batch(items, 4, pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [5, 6, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, IGNORE_INDEX, 7, 8], [IGNORE_INDEX, 6, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]


def _result(config: str, quantization: str, checkpointing: str, defaults: bool, peak: float, sps: float) -> dict:
    return {"config": config, "quantization": quantization, "gradient_checkpointing": checkpointing,
            "recipe_defaults": defaults, "samples_per_s": sps, "process_peak_mib": peak,
            "baseline": {"rss_mib": 400.0}, "load_anon_peak_mib": peak / 2, "train_anon_peak_mib": peak / 2,
            "state_mib": {"total": peak / 4}}


def test_comparisons_say_which_qlora_ratio_is_like_for_like(bench):
    results = {"chat-lora": _result("chat-lora", "fp32", "off", True, 3000, 1.0),
               "chat-lora-gc": _result("chat-lora-gc", "fp32", "on", False, 2000, 0.8),
               "chat-qlora": _result("chat-qlora", "nf4", "on", True, 1400, 0.4)}
    rows = {r["compare"]: r for r in bench.comparisons(results)}
    assert set(rows) == {"chat: lora-gc / lora", "chat: qlora / lora", "chat: qlora / lora-gc"}
    defaults, like = rows["chat: qlora / lora"], rows["chat: qlora / lora-gc"]
    assert "recipe defaults" in defaults["what"] and "like for like" in like["what"]
    assert defaults["numerator_setup"] == {"quantization": "nf4", "gradient_checkpointing": "on", "recipe_defaults": True}
    assert defaults["denominator_setup"]["gradient_checkpointing"] == "off"
    assert like["denominator_setup"]["gradient_checkpointing"] == "on"
    assert defaults["process_peak"] == pytest.approx(1400 / 3000) and defaults["meets_target"]["process_peak"]
    assert like["process_peak"] == pytest.approx(0.7) and not like["meets_target"]["process_peak"]
    assert "target" not in rows["chat: lora-gc / lora"]


def test_every_configuration_is_a_recipe_setting(bench):
    for name, (family, method, checkpointing) in bench.CONFIGS.items():
        assert name == f"{family}-{method}" + ("-gc" if checkpointing == "on" else "")
        assert checkpointing in ("auto", "on")
    assert set(bench.DEFAULT_CONFIGS.split(",")) <= set(bench.CONFIGS)
