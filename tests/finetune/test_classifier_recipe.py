"""finetune/classifier_recipe.py end to end on CPU: a few dozen steps on a tiny random BERT, then
assertions on the artifacts it leaves (litgpt's test_lora_script, STYLE.md "tests/").

Every run uses the tiny base from tests/fixtures/tiny.py and 60 + 15 labelled rows whose
label follows from one word, so a few dozen LoRA steps clearly lower the loss.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from bot.classifier import TextClassifier, load_base_classifier, predict_proba
from core.errors import InputError, ModelLoadError
from core.model_refs import resolve
from finetune.args import parse_args
from finetune.classifier_recipe import ClassifierArgs, build_bnb_config, build_lora_config, main
from finetune.data import read_examples
from finetune.classification_metrics import classification_report
from finetune.training import length_grouped_batches
from fixtures.env import clean_supportbot_env

REPO = Path(__file__).resolve().parents[2]
LABELS = ["negative", "neutral", "positive"]
PNG = b"\x89PNG\r\n\x1a\n"
STEPS_PER_EPOCH = 8  # 60 training rows, batch size 8


def recipe_argv(base, files, out, *extra) -> list[str]:
    return ["--train", str(files["train"]), "--eval", str(files["eval"]), "--base", str(base),
            "--output", str(out), "--batch-size", "8", "--learning-rate", "5e-3", "--lora-r", "8",
            "--lora-alpha", "16", "--lora-dropout", "0", "--patience", "100", "--threads", "1",
            "--record", "false", "--version", "tiny-v1", *[str(e) for e in extra]]


def train_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]


def eval_texts_and_labels(files) -> tuple[list[str], list[str]]:
    rows = read_examples(files["eval"])
    return [e.text for e in rows], [e.label for e in rows]


# ---- (1) LoRA end to end --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lora_run(tiny_base_dir, sentiment_files, tmp_path_factory):
    """48 LoRA steps (6 epochs); the base is given as a path relative to the working directory,
    so the test can tell the reference given from the path peft saw."""
    out = tmp_path_factory.mktemp("lora") / "out"
    with pytest.MonkeyPatch.context() as mp:
        clean_supportbot_env(mp, tiny_base_dir.parent)  # module scope: before the autouse fixture runs
        report = main(recipe_argv(tiny_base_dir.name, sentiment_files, out, "--max-steps", 48))
    return {"out": out, "report": report, "cwd": tiny_base_dir.parent, "ref": tiny_base_dir.name}


def test_lora_loss_falls(lora_run):
    log = train_log(lora_run["out"])
    assert [h["step"] for h in log] == list(range(1, 49))
    first = np.mean([h["loss"] for h in log[:STEPS_PER_EPOCH]])
    last = np.mean([h["loss"] for h in log[-STEPS_PER_EPOCH:]])
    assert last < 0.6 * first, (first, last)
    evals = [h["step"] for h in log if "eval_loss" in h]
    assert evals == [8, 16, 24, 32, 40, 48]  # once per epoch
    assert log[-1]["eval_loss"] < log[evals[0] - 1]["eval_loss"]
    assert all(h["lr"] > 0 for h in log[:-1])


def test_lora_learns_the_task(lora_run):
    report = lora_run["report"]
    assert report["n"] == 15 and report["labels"] == LABELS
    assert report["accuracy"] >= 0.6  # chance is 1/3; 48 steps on 60 rows do not generalise perfectly
    assert report["steps"] == 48 and report["train_rows"] == 60 and report["eval_rows"] == 15
    assert report["best_step"] in range(8, 49, 8)


def test_lora_artifacts(lora_run):
    out = lora_run["out"]
    for name in ("adapter_config.json", "adapter_model.safetensors", "supportbot.json", "eval_report.json",
                 "loss.png", "confusion.png", "README.md", "train_log.jsonl"):
        assert (out / name).is_file(), name
    assert not (out / "best").exists()  # the best weights became the adapter
    assert (out / "checkpoint" / "state.json").is_file()
    for png in ("loss.png", "confusion.png"):
        data = (out / png).read_bytes()
        assert data.startswith(PNG) and len(data) > 1000

    meta = json.loads((out / "supportbot.json").read_text())
    assert meta["labels"] == LABELS
    assert meta["task"] == "sentiment" and meta["kind"] == "classifier" and meta["version"] == "tiny-v1"
    assert meta["base"] == lora_run["ref"]
    assert meta["lora"] is True and meta["quantization"] is None
    assert meta["max_length"] == 128
    assert meta["hyperparameters"]["lora_r"] == 8 and meta["hyperparameters"]["max_steps"] == 48
    assert len(meta["data"]) == 1 and len(meta["data"][0]["sha256"]) == 64

    saved = json.loads((out / "eval_report.json").read_text())
    assert saved == json.loads(json.dumps(lora_run["report"]))  # what main() returned
    for key in ("accuracy", "macro_f1", "macro_recall", "eval_loss", "n"):
        assert meta["metrics"][key] == saved[key]

    card = (out / "README.md").read_text()
    assert "# tiny-v1" in card and f"{saved['accuracy']:.4f}" in card and "negative" in card


def test_adapter_config_keeps_the_reference_given(lora_run):
    cfg = json.loads((lora_run["out"] / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == lora_run["ref"]  # not the absolute path peft saw
    assert cfg["task_type"] == "SEQ_CLS"
    assert cfg["r"] == 8 and cfg["lora_alpha"] == 16


def test_reloaded_adapter_reproduces_the_training_report(lora_run, sentiment_files, monkeypatch, tmp_path):
    monkeypatch.chdir(lora_run["cwd"])  # the base reference is relative
    clf = TextClassifier.load(str(lora_run["out"]), tmp_path / "cache")
    assert clf.labels == LABELS and clf.name == "tiny-v1" and clf.max_length == 128
    texts, labels = eval_texts_and_labels(sentiment_files)
    proba = clf.predict_proba(texts)
    report = classification_report(labels, [LABELS[i] for i in proba.argmax(1)], LABELS)
    saved = json.loads((lora_run["out"] / "eval_report.json").read_text())
    assert report["accuracy"] == saved["accuracy"]
    assert report["confusion_matrix"] == saved["confusion_matrix"]
    idx = np.array([LABELS.index(y) for y in labels])
    eval_loss = float(-np.log(np.clip(proba[np.arange(len(idx)), idx], 1e-9, 1)).mean())
    assert eval_loss == pytest.approx(saved["eval_loss"], abs=1e-4)


def test_merged_adapter_equals_unmerged(lora_run, sentiment_files, monkeypatch, tmp_path, tiny_base_dir):
    from peft import PeftModel

    monkeypatch.chdir(lora_run["cwd"])
    merged = TextClassifier.load(str(lora_run["out"]), tmp_path / "cache")
    tokenizer, base = load_base_classifier(resolve(str(tiny_base_dir), tmp_path), LABELS)
    unmerged = PeftModel.from_pretrained(base, str(lora_run["out"])).eval()
    texts, _ = eval_texts_and_labels(sentiment_files)
    texts += ["服务太差了", "iphone 坏了", "where is my order now please"]
    np.testing.assert_allclose(merged.predict_proba(texts), predict_proba(unmerged, tokenizer, texts, max_length=128),
                               atol=1e-4)


# ---- flags -> library configs (pure functions) -------------------------------------------------------


def test_build_lora_config():
    cfg = build_lora_config(ClassifierArgs(lora_r=4, lora_alpha=8, lora_dropout=0.05))
    assert cfg.task_type == "SEQ_CLS"
    assert (cfg.r, cfg.lora_alpha, cfg.lora_dropout) == (4, 8, 0.05)
    assert cfg.target_modules == "all-linear"
    named = build_lora_config(ClassifierArgs(target_modules="query, value"))
    assert set(named.target_modules) == {"query", "value"}
    assert build_lora_config(ClassifierArgs(full_finetune=True)) is None


def test_build_bnb_config():
    import torch

    assert build_bnb_config(ClassifierArgs()) is None
    four = build_bnb_config(ClassifierArgs(qlora=True))
    assert four.load_in_4bit and not four.load_in_8bit
    assert four.bnb_4bit_quant_type == "nf4" and four.bnb_4bit_use_double_quant
    assert four.bnb_4bit_compute_dtype == torch.float32
    assert "classifier" in four.llm_int8_skip_modules and "score" in four.llm_int8_skip_modules
    eight = build_bnb_config(ClassifierArgs(bits=8))
    assert eight.load_in_8bit and not eight.load_in_4bit
    assert "classifier" in eight.llm_int8_skip_modules


def test_qlora_loads_a_4bit_base_with_a_full_precision_head(tiny_base_dir, tmp_path):
    import bitsandbytes as bnb
    import torch

    args = ClassifierArgs(qlora=True)
    _tok, model = load_base_classifier(resolve(str(tiny_base_dir), tmp_path), LABELS,
                                       quantization_config=build_bnb_config(args))
    quantized = {n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    linear = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert "bert.encoder.layer.0.attention.self.query" in quantized
    assert "bert.encoder.layer.1.output.dense" in quantized
    assert "classifier" not in quantized and "classifier" in linear
    assert model.classifier.weight.dtype == torch.float32
    layer = model.get_submodule("bert.encoder.layer.0.attention.self.query")
    assert layer.weight.dtype == torch.uint8 and layer.weight.quant_state.quant_type == "nf4"


def test_length_grouped_batches():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 500, size=150).tolist()
    batches = length_grouped_batches(lengths, 4, seed=3)
    assert sorted(i for b in batches for i in b) == list(range(150))  # each example once
    assert all(1 <= len(b) <= 4 for b in batches)
    # one window (150 < 4 * 50): the batches are consecutive slices of the length-sorted order
    by_start = sorted(batches, key=lambda b: min(lengths[i] for i in b))
    flat = [lengths[i] for b in by_start for i in sorted(b, key=lambda i: lengths[i])]
    assert flat == sorted(lengths)
    assert length_grouped_batches(lengths, 4, seed=3) == batches
    assert length_grouped_batches(lengths, 4, seed=4) != batches


# ---- (2) QLoRA, (3) 8-bit ---------------------------------------------------------------------------


def test_grad_accum_makes_exact_groups_within_each_epoch(tiny_base_dir, sentiment_files, tmp_path):
    """8 micro-batches per epoch with --grad-accum 3 make steps of 3, 3 and 2 (the short last
    group is averaged over its own size, finetune/training.py, as in the chat recipe): 3 steps
    an epoch, each epoch evaluated at its end."""
    out = tmp_path / "accum"
    report = main(recipe_argv(tiny_base_dir, sentiment_files, out, "--epochs", 2, "--grad-accum", 3))
    log = train_log(out)
    assert [h["step"] for h in log] == list(range(1, 7)) and report["steps"] == 6
    assert [h["step"] for h in log if "eval_loss" in h] == [3, 6]
    assert json.loads((out / "checkpoint" / "state.json").read_text())["epoch"] == 2


def test_qlora_trains_saves_and_reloads(tiny_base_dir, sentiment_files, tmp_path):
    out = tmp_path / "qlora"
    report = main(recipe_argv(tiny_base_dir, sentiment_files, out, "--qlora", "--max-steps", 6))
    log = train_log(out)
    assert [h["step"] for h in log] == list(range(1, 7))
    assert all(np.isfinite(h["loss"]) for h in log)
    meta = json.loads((out / "supportbot.json").read_text())
    assert meta["quantization"] == "nf4" and meta["lora"] is True
    assert meta["hyperparameters"]["qlora"] is True and meta["hyperparameters"]["bits"] == 4
    assert meta["hyperparameters"]["gradient_checkpointing"] == "on"  # the default for a quantized base
    assert "QLoRA" in (out / "README.md").read_text()
    assert (out / "adapter_model.safetensors").is_file()
    clf = TextClassifier.load(str(out), tmp_path / "cache")  # served on a full-precision base
    texts, labels = eval_texts_and_labels(sentiment_files)
    proba = clf.predict_proba(texts)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert report["n"] == len(labels) == 15


def test_qlora_keeps_training_after_an_evaluation(tiny_base_dir, sentiment_files, tmp_path):
    out = tmp_path / "qlora"
    main(recipe_argv(tiny_base_dir, sentiment_files, out, "--qlora", "--max-steps", STEPS_PER_EPOCH + 2))
    assert [h["step"] for h in train_log(out)] == list(range(1, STEPS_PER_EPOCH + 3))


def test_8bit_with_a_yaml_config_overridden_by_flags(tiny_base_dir, sentiment_files, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"task": "sentiment", "bits": 8, "max_steps": 500, "lora_r": 4,
                                      "lora_alpha": 12, "learning_rate": 1e-3, "version": "from-yaml"}))
    out = tmp_path / "int8"
    argv = ["--config", str(config), *recipe_argv(tiny_base_dir, sentiment_files, out, "--max-steps", 10)]
    argv.remove("--version"), argv.remove("tiny-v1")  # the version comes from the YAML file
    argv[argv.index("--lora-alpha"):argv.index("--lora-alpha") + 2] = []  # so does lora_alpha
    report = main(argv)
    meta = json.loads((out / "supportbot.json").read_text())
    hp = meta["hyperparameters"]
    assert meta["quantization"] == "int8" and hp["bits"] == 8 and hp["gradient_checkpointing"] == "on"
    assert hp["max_steps"] == 10 and report["steps"] == 10  # flag beats YAML
    assert hp["lora_r"] == 8 and hp["learning_rate"] == 5e-3  # flags beat YAML
    assert hp["lora_alpha"] == 12 and meta["version"] == "from-yaml"  # YAML beats defaults
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"]) == (8, 12)
    assert [h["step"] for h in train_log(out)] == list(range(1, 11))  # an evaluation at step 8, then on
    clf = TextClassifier.load(str(out), tmp_path / "cache")
    assert clf.name == "from-yaml"
    assert clf.predict_proba(["the app is great"]).shape == (1, 3)


def test_full_finetune_output_loads(tiny_base_dir, sentiment_files, tmp_path):
    out = tmp_path / "full"
    report = main(recipe_argv(tiny_base_dir, sentiment_files, out, "--full-finetune", "--max-steps", 2))
    assert json.loads((out / "supportbot.json").read_text())["lora"] is False
    clf = TextClassifier.load(str(out), tmp_path / "cache")
    texts, labels = eval_texts_and_labels(sentiment_files)
    predicted = [LABELS[i] for i in clf.predict_proba(texts).argmax(1)]
    assert classification_report(labels, predicted, LABELS)["accuracy"] == report["accuracy"]


# ---- gradient checkpointing ------------------------------------------------------------------------


@pytest.mark.parametrize(("flags", "expected"), [
    ([], "off"), (["--full-finetune"], "off"),  # fp32: speed first
    (["--qlora"], "on"), (["--bits", "8"], "on"),  # a quantized base: memory first, as QLoRA does
    (["--gradient-checkpointing", "on"], "on"), (["--full-finetune", "--gradient-checkpointing", "on"], "on"),
    (["--qlora", "--gradient-checkpointing", "off"], "off"),
])
def test_gradient_checkpointing_defaults_to_on_for_a_quantized_base(flags, expected):
    assert parse_args(ClassifierArgs, ["--train", "x.csv", *flags]).gradient_checkpointing == expected


def test_gradient_checkpointing_full_finetune_takes_the_same_steps(tiny_base_dir, sentiment_files, tmp_path):
    """Full fine-tuning (no PEFT) with checkpointing on: the same losses (the tiny BERT has no
    dropout), each layer run again in the backward pass (counted with a global forward pre-hook)."""
    import torch
    from transformers.models.bert.modeling_bert import BertIntermediate

    calls = {}

    def count(module, _args):
        if isinstance(module, BertIntermediate):
            calls[flag] += 1

    handle = torch.nn.modules.module.register_module_forward_pre_hook(count)
    try:
        for flag in ("off", "on"):
            calls[flag] = 0
            main(recipe_argv(tiny_base_dir, sentiment_files, tmp_path / flag, "--full-finetune", "--max-steps", 4,
                             "--gradient-checkpointing", flag))
    finally:
        handle.remove()
    assert calls["on"] - calls["off"] == 4 * 2  # 4 steps x 2 layers; the evaluations are the same
    np.testing.assert_allclose([h["loss"] for h in train_log(tmp_path / "on")],
                               [h["loss"] for h in train_log(tmp_path / "off")], rtol=1e-4)
    hp = json.loads((tmp_path / "on" / "supportbot.json").read_text())["hyperparameters"]
    assert hp["gradient_checkpointing"] == "on"
    assert '"gradient_checkpointing": "on"' in (tmp_path / "on" / "README.md").read_text()


# ---- (5) validation: every problem at once, before any weights load -----------------------------------


def test_bad_flags_are_reported_together(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError) as info:
        main(["--train", str(tmp_path / "missing.csv"), "data.csv@heavy", "--eval", str(tmp_path / "nope.csv"),
              "--bits", "3", "--epochs", "0", "--eval-fraction", "0.7", "--metric", "f2", "--batch-size", "0",
              "--gradient-checkpointing", "yes", "--resume", "--output", str(out), "--record", "false"])
    message = str(info.value)
    for needle in ("missing.csv: no such file", "the weight after @ must be a number", "nope.csv: no such file",
                   "--bits must be 4 or 8", "--gradient-checkpointing must be on, off or auto (got 'yes')", "--epochs or --max-steps must be positive",
                   "--eval-fraction must be in (0, 0.5)", "--metric must be macro_f1 or accuracy",
                   "--batch-size and --grad-accum must be >= 1", "--resume: no checkpoint"):
        assert needle in message, needle
    assert not out.exists()  # nothing was created


@pytest.mark.parametrize(
    ("flags", "needle"),
    [(["--qlora", "--bits", "8"], "--qlora means 4-bit"),
     (["--full-finetune", "--qlora"], "--full-finetune cannot train quantized weights")],
)
def test_exclusive_flags(sentiment_files, tmp_path, flags, needle):
    with pytest.raises(InputError, match=needle):
        main(["--train", str(sentiment_files["train"]), "--output", str(tmp_path / "o"), *flags])


def test_no_train_file(tmp_path):
    with pytest.raises(InputError, match="--train is required"):
        main(["--output", str(tmp_path / "o")])


def test_labels_flag_must_cover_the_data(tiny_base_dir, sentiment_files, tmp_path):
    with pytest.raises(InputError, match=r"labels \['neutral'\] occur in the data but not in --labels"):
        main(recipe_argv(tiny_base_dir, sentiment_files, tmp_path / "o", "--labels", "negative,positive"))


def test_an_adapter_is_not_a_base(lora_run, sentiment_files, tmp_path):
    with pytest.raises(InputError, match="is an adapter"):
        main(recipe_argv(lora_run["out"], sentiment_files, tmp_path / "o", "--max-steps", 1))


# ---- (4) resume after kill -9 ---------------------------------------------------------------------------


def _read_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):  # not there yet, or being replaced right now
        return None


def test_resume_after_kill(tiny_base_dir, sentiment_files, tmp_path, caplog):
    out = tmp_path / "run"
    state_file = out / "checkpoint" / "state.json"
    argv = recipe_argv(tiny_base_dir, sentiment_files, out, "--save-steps", 2)
    log_path = tmp_path / "first.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "finetune.classifier_recipe", *argv, "--max-steps", "5000"],
                                cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT, env=os.environ.copy())
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                assert proc.poll() is None, "the run ended before it could be killed:\n" + log_path.read_text()[-3000:]
                state = _read_state(state_file)
                if state and state["step"] > 0:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("no checkpoint within 180 s:\n" + log_path.read_text()[-3000:])
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL
    saved = _read_state(state_file)  # the last checkpoint written before the kill
    assert saved is not None, "kill -9 left no readable checkpoint"
    step = saved["step"]
    assert 0 < step < 5000
    assert not (out / "supportbot.json").exists()  # it really was killed mid-run

    caplog.set_level(logging.INFO, logger="supportbot.finetune")
    report = main([*argv, "--max-steps", str(step + 6), "--resume"])
    assert f"resuming at step {step}" in caplog.text
    log = train_log(out)
    assert [h["step"] for h in log] == list(range(1, step + 7))  # continued, not restarted
    assert log[:step] == saved["history"]  # the steps before the kill come from the checkpoint
    assert report["steps"] == step + 6
    assert _read_state(state_file)["step"] == step + 6
    clf = TextClassifier.load(str(out), tmp_path / "cache")
    assert clf.labels == LABELS
    np.testing.assert_allclose(clf.predict_proba(["the app is great", "where is my order"]).sum(axis=1), 1.0,
                               atol=1e-5)


# ---- the run record in the database --------------------------------------------------------------------


def test_run_and_model_version_are_recorded(tiny_base_dir, sentiment_files, tmp_path):
    from storage.db import make_engine, make_session_factory
    from storage.repositories import finetune_runs, model_versions

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    out = tmp_path / "out"
    argv = recipe_argv(tiny_base_dir, sentiment_files, out, "--max-steps", 3)
    argv[argv.index("--record") + 1] = "true"
    report = main([*argv, "--database-url", url])
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            (run,) = finetune_runs.list_runs(session)
            assert (run.task, run.kind, run.status) == ("sentiment", "classifier", "succeeded")
            assert run.progress == 1.0
            assert run.output_dir == str(out)
            assert run.config["lora_r"] == 8 and run.config["max_steps"] == 3
            assert run.metrics["accuracy"] == report["accuracy"]
            (version,) = model_versions.list_model_versions(session, task="sentiment")
            assert version.name == "tiny-v1" and version.status == "candidate"
            assert version.path == str(out.resolve())
            assert version.base_model == str(tiny_base_dir)
            assert version.finetune_run_id == run.id
            assert version.metrics["macro_f1"] == report["macro_f1"]
    finally:
        engine.dispose()


def test_a_failed_run_is_recorded_as_failed(tiny_base_dir, sentiment_files, tmp_path):
    from storage.db import make_engine, make_session_factory
    from storage.repositories import finetune_runs

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    out = tmp_path / "out"
    (out / "loss.png").mkdir(parents=True)  # the plot cannot be written: the run fails after training
    argv = recipe_argv(tiny_base_dir, sentiment_files, out, "--max-steps", 2)
    argv[argv.index("--record") + 1] = "true"
    with pytest.raises(OSError):
        main([*argv, "--database-url", url])
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            (run,) = finetune_runs.list_runs(session)
            assert run.status == "failed" and run.error
    finally:
        engine.dispose()


def test_init_from_continues_an_adapter(lora_run, sentiment_files, tmp_path, monkeypatch):
    """--init-from starts from the adapter's weights (the retrain path), not from scratch."""
    first, first_report = lora_run["out"], lora_run["report"]
    out = tmp_path / "continued"
    monkeypatch.chdir(lora_run["cwd"])  # the adapter's base reference is relative to it
    report = main(recipe_argv(lora_run["ref"], sentiment_files, out, "--init-from", first, "--max-steps", 2,
                              "--learning-rate", "1e-5"))
    meta = json.loads((out / "supportbot.json").read_text())
    assert meta["init_from"] == str(first)
    assert meta["labels"] == json.loads((first / "supportbot.json").read_text())["labels"]
    # Two tiny steps from a trained adapter keep (about) its accuracy; from scratch it is near chance.
    assert report["accuracy"] >= first_report["accuracy"] - 0.15
    assert report["accuracy"] > 0.5


def test_init_from_must_match_the_base(lora_run, sentiment_files, tmp_path):
    argv = recipe_argv("minilm-l6", sentiment_files, tmp_path / "x", "--init-from", lora_run["out"])
    with pytest.raises(InputError, match="not --base 'minilm-l6'"):
        main(argv)


@pytest.mark.parametrize(("amx", "flags", "expected"), [
    (True, [], "on"), (False, [], "off"), (True, ["--qlora"], "off"), (False, ["--bf16", "on"], "on"),
    (True, ["--bf16", "off"], "off")])
def test_bf16_defaults_to_on_where_the_cpu_has_amx(monkeypatch, amx, flags, expected):
    from core import hardware

    monkeypatch.setattr(hardware, "cpu_has_amx", lambda: amx)
    assert parse_args(ClassifierArgs, ["--train", "x.csv", *flags]).bf16 == expected


def test_bf16_autocast_trains_and_reports_in_fp32(tiny_base_dir, sentiment_files, tmp_path, monkeypatch):
    """bf16 forward passes (autocast) still learn; the saved report is the fp32 model's, as served."""
    out = tmp_path / "bf16"
    report = main(recipe_argv(tiny_base_dir, sentiment_files, out, "--bf16", "on", "--epochs", "4"))
    meta = json.loads((out / "supportbot.json").read_text())
    assert meta["hyperparameters"]["bf16"] == "on"
    losses = [h["loss"] for h in train_log(out)]
    assert np.mean(losses[-4:]) < np.mean(losses[:4])
    monkeypatch.setenv("SUPPORTBOT_HOME", str(tmp_path / "home"))
    clf = TextClassifier.load(str(out), tmp_path / "cache")
    texts, labels = eval_texts_and_labels(sentiment_files)
    proba = clf.predict_proba(texts)
    idx = np.array([LABELS.index(y) for y in labels])
    assert float(-np.log(proba[np.arange(len(idx)), idx]).mean()) == pytest.approx(report["eval_loss"], abs=1e-4)
