"""finetune/chat_recipe.py end to end on CPU: a few steps of LoRA / QLoRA SFT on a tiny random Llama
with a ChatML template, then assertions on the artifacts (litgpt's test_lora_script, STYLE.md
"tests/"); plus the assistant-only label mask, merge, `eval chat` and the data preparation.

The base and the conversations come from tests/fixtures/tiny.py: 40 training and 10 eval
conversations whose reply follows from one word of the question.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from app import cli
from core.errors import InputError
from finetune import chat_data
from finetune.args import parse_args
from finetune.chat_recipe import ChatArgs, main
from finetune.chat_model import load_chat_model
from finetune.perplexity import evaluate_chat
from fixtures import tiny
from fixtures.env import clean_supportbot_env

REPO = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"
STEPS_PER_EPOCH = 5  # 40 conversations, batch size 8


@pytest.fixture(scope="module")
def chat_lm_dir(tmp_path_factory) -> Path:
    return tiny.build_chat_lm(tmp_path_factory.mktemp("tiny") / "chat-lm")


@pytest.fixture(scope="module")
def chat_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("chat-data")
    conversations = tiny.chat_examples(50, seed=0)
    files = {"train": root / "train.jsonl", "eval": root / "eval.jsonl"}
    for name, rows in (("train", conversations[:40]), ("eval", conversations[40:])):
        files[name].write_text("".join(json.dumps(c) + "\n" for c in rows), encoding="utf-8")
    return files


def recipe_argv(base, files, out, *extra) -> list[str]:
    return ["--train", str(files["train"]), "--eval", str(files["eval"]), "--base", str(base),
            "--output", str(out), "--batch-size", "8", "--learning-rate", "1e-2", "--lora-r", "8",
            "--lora-alpha", "16", "--lora-dropout", "0", "--patience", "100", "--threads", "1",
            "--record", "false", *[str(e) for e in extra]]


def train_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]


# ---- the assistant-only label mask -----------------------------------------------------------------


def _conversation(*messages) -> chat_data.Conversation:
    return chat_data.Conversation(tuple({"role": r, "content": c} for r, c in messages), "test:1")


def test_only_assistant_content_and_end_of_turn_are_labelled(chat_lm_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(chat_lm_dir)
    conv = _conversation(("system", "be nice"), ("user", "where is my order"), ("assistant", "it is great"),
                         ("user", "thanks"), ("assistant", "happy"))
    # The rendered text, cut where the labels switch on and off (special tokens split the text,
    # and the byte-level pre-tokenizer splits at the newlines, so the pieces encode separately).
    pieces = [("<|im_start|>system\nbe nice<|im_end|>\n<|im_start|>user\nwhere is my order<|im_end|>\n"
               "<|im_start|>assistant\n", False), ("it is great<|im_end|>", True),
              ("\n<|im_start|>user\nthanks<|im_end|>\n<|im_start|>assistant\n", False), ("happy<|im_end|>", True),
              ("\n", False)]
    expected_ids, expected_labels = [], []
    for text, trained in pieces:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        expected_ids += ids
        expected_labels += ids if trained else [-100] * len(ids)
    ids, labels = chat_data.encode(tok, conv, max_length=1000)
    assert ids == expected_ids
    assert labels == expected_labels
    assert tok.decode([t for t in labels if t != -100]) == "it is great<|im_end|>happy<|im_end|>"
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    assert [i for i, t in enumerate(labels) if t == eot] == [i for i, t in enumerate(ids) if t == eot][2::2]

    # Truncation keeps the first reply whole and half of nothing else; cut before it, nothing is left.
    first_end = expected_labels.index(eot) + 1
    ids, labels = chat_data.encode(tok, conv, max_length=first_end + 2)
    assert labels == expected_labels[: first_end + 2] and len(ids) == first_end + 2
    prompt_len = len(tok(pieces[0][0], add_special_tokens=False)["input_ids"])
    assert chat_data.encode(tok, conv, max_length=prompt_len) is None
    kept, dropped = chat_data.encode_all(tok, [conv, conv], max_length=prompt_len)
    assert (kept, dropped) == ([], 2)


def test_assistant_weight_zero_is_context_only(chat_lm_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(chat_lm_dir)
    messages = ({"role": "user", "content": "hi"}, {"role": "assistant", "content": "the app", "weight": 0},
                {"role": "user", "content": "ok"}, {"role": "assistant", "content": "happy"})
    _ids, labels = chat_data.encode(tok, chat_data.Conversation(messages, "t:1"), max_length=1000)
    assert tok.decode([t for t in labels if t != -100]) == "happy<|im_end|>"


# ---- (1) LoRA end to end, recorded in a SQLite database ---------------------------------------------


@pytest.fixture(scope="module")
def lora_run(chat_lm_dir, chat_files, tmp_path_factory):
    """20 LoRA steps (4 epochs, an evaluation after each), recorded in a SQLite file."""
    root = tmp_path_factory.mktemp("lora")
    out, url = root / "chat-v1", f"sqlite:///{root / 'runs.db'}"
    argv = recipe_argv(chat_lm_dir, chat_files, out, "--max-steps", 20, "--database-url", url)
    argv[argv.index("--record") + 1] = "true"
    with pytest.MonkeyPatch.context() as mp:
        clean_supportbot_env(mp, root)  # module scope: before the autouse fixture runs
        report = main(argv)
    return {"out": out, "report": report, "url": url, "root": root}


def test_lora_loss_falls(lora_run):
    log = train_log(lora_run["out"])
    assert [h["step"] for h in log] == list(range(1, 21))
    evals = [h for h in log if "eval_loss" in h]
    assert [h["step"] for h in evals] == [5, 10, 15, 20]  # once per epoch
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"]
    assert np.mean([h["loss"] for h in log[-STEPS_PER_EPOCH:]]) < np.mean([h["loss"] for h in log[:STEPS_PER_EPOCH]])
    report = lora_run["report"]
    assert report["eval_loss"] < report["base_eval_loss"] - 0.3
    assert report["perplexity"] == pytest.approx(math.exp(report["eval_loss"]))
    assert report["base_perplexity"] == pytest.approx(math.exp(report["base_eval_loss"]))
    assert report["n_eval"] == 10 and report["train_rows"] == 40 and report["steps"] == 20
    assert report["best_step"] == min(evals, key=lambda h: h["eval_loss"])["step"]
    assert report["eval_loss"] == pytest.approx(min(h["eval_loss"] for h in evals), abs=1e-5)


def test_lora_artifacts(lora_run, chat_lm_dir, chat_files):
    out = lora_run["out"]
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "chat_template.jinja", "supportbot.json", "eval_report.json", "train_log.jsonl", "loss.png",
                 "README.md"):
        assert (out / name).is_file(), name
    assert not (out / "best").exists() and (out / "checkpoint" / "state.json").is_file()
    assert (out / "loss.png").read_bytes().startswith(PNG)
    assert (out / "chat_template.jinja").read_text() == tiny.CHAT_TEMPLATE

    meta = json.loads((out / "supportbot.json").read_text())
    assert (meta["task"], meta["kind"], meta["version"]) == ("chat", "chat", "chat-v1")
    assert meta["base"] == str(chat_lm_dir) and meta["max_length"] == 384
    assert meta["lora"] == {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"}
    assert meta["quantization"] is None
    (data,) = meta["data"]
    assert data["rows"] == 40 and len(data["sha256"]) == 64 and data["path"] == str(chat_files["train"])
    report = json.loads((out / "eval_report.json").read_text())
    assert report == json.loads(json.dumps(lora_run["report"]))
    assert {"eval_loss", "perplexity", "base_perplexity", "n_eval"} <= set(report)
    assert meta["metrics"] == {k: report[k] for k in ("eval_loss", "perplexity", "base_perplexity", "n_eval")}

    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["task_type"] == "CAUSAL_LM" and adapter["base_model_name_or_path"] == str(chat_lm_dir)
    card = (out / "README.md").read_text()
    assert "# chat-v1" in card and data["sha256"] in card and "40 conversations" in card
    assert f"{report['perplexity']:.2f}" in card and f"{report['base_perplexity']:.2f}" in card


def test_the_run_and_model_version_are_recorded(lora_run):
    from storage.db import make_engine, make_session_factory
    from storage.repositories import finetune_runs, model_versions

    engine = make_engine(lora_run["url"])
    try:
        with make_session_factory(engine)() as session:
            (run,) = finetune_runs.list_runs(session)
            assert (run.task, run.kind, run.status) == ("chat", "chat", "succeeded")
            assert run.progress == 1.0 and run.config["max_steps"] == 20
            assert run.metrics["perplexity"] == lora_run["report"]["perplexity"]
            assert run.data[0]["rows"] == 40
            (version,) = model_versions.list_model_versions(session, task="chat")
            assert version.name == "chat-v1" and version.path == str(lora_run["out"].resolve())
            assert version.finetune_run_id == run.id
    finally:
        engine.dispose()


def test_reloaded_adapter_gives_the_same_perplexity(lora_run, chat_files, tmp_path):
    result = evaluate_chat(str(lora_run["out"]), chat_files["eval"], tmp_path / "cache")
    assert result["n"] == 10
    assert result["perplexity"] == pytest.approx(lora_run["report"]["perplexity"], rel=1e-5)
    assert result["eval_tokens"] == lora_run["report"]["eval_tokens"]


def test_eval_chat_cli(lora_run, chat_lm_dir, chat_files, tmp_path, capsys):
    argv = ["eval", "chat", "--data", str(chat_files["eval"]), "--json", "--home", str(tmp_path), "--threads", "1"]
    assert cli.main([*argv, "--model", str(lora_run["out"])]) == 0
    adapter = json.loads(capsys.readouterr().out)
    assert adapter["perplexity"] == pytest.approx(lora_run["report"]["perplexity"], rel=1e-5)
    assert cli.main([*argv, "--model", str(chat_lm_dir)]) == 0  # the base, without adapter
    base = json.loads(capsys.readouterr().out)
    assert base["perplexity"] == pytest.approx(lora_run["report"]["base_perplexity"], rel=1e-5)
    assert cli.main([*argv, "--model", str(chat_lm_dir), "--max-samples", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 3
    assert cli.main(["eval", "chat", "--data", str(chat_files["eval"]), "--home", str(tmp_path),
                     "--model", str(lora_run["out"])]) == 0
    assert f"perplexity {lora_run['report']['perplexity']:.3f}" in capsys.readouterr().out


def test_merge_gives_the_unmerged_logits(lora_run, chat_files, tmp_path, caplog):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged_dir = tmp_path / "merged"
    caplog.set_level(logging.INFO, logger="supportbot.finetune")
    assert cli.main(["finetune", "merge", str(lora_run["out"]), "--output", str(merged_dir)]) == 0
    assert "full-precision" in caplog.text
    assert (merged_dir / "model.safetensors").is_file() and (merged_dir / "chat_template.jinja").is_file()
    assert not (merged_dir / "supportbot.json").exists() and not (merged_dir / "adapter_config.json").exists()
    assert "quantization_config" not in json.loads((merged_dir / "config.json").read_text())

    tokenizer, unmerged, _ = load_chat_model(str(lora_run["out"]), tmp_path / "cache")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    merged_tok = AutoTokenizer.from_pretrained(merged_dir)
    conversations = chat_data.read_conversations(chat_files["eval"])
    encoded, _ = chat_data.encode_all(merged_tok, conversations, 384)
    batch = next(chat_data.eval_batches(encoded, 10, tokenizer.pad_token_id))
    with torch.no_grad():
        a = unmerged(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        b = merged(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    mask = batch["attention_mask"].bool()
    np.testing.assert_allclose(a[mask].numpy(), b[mask].numpy(), atol=1e-4)
    assert evaluate_chat(str(merged_dir), chat_files["eval"], tmp_path / "cache")["perplexity"] == pytest.approx(
        lora_run["report"]["perplexity"], rel=1e-4)


def test_merge_refuses_what_it_cannot_merge(tmp_path):
    from finetune import merge

    adapter = tmp_path / "sentiment"
    adapter.mkdir()
    (adapter / "supportbot.json").write_text(json.dumps({"task": "sentiment", "base": "minilm-l6"}))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(InputError) as info:
        merge.main([str(adapter), "--output", str(tmp_path / "full"), "--dtype", "int4"])
    for needle in ("is a sentiment adapter; merge handles chat adapters only", "exists and is not empty",
                   "--dtype must be one of"):
        assert needle in str(info.value), needle


def test_early_stopping_reports_the_best_evaluation(chat_lm_dir, chat_files, tmp_path):
    """At learning rate 0 the adapter stays a no-op (LoRA's B starts at zero): every evaluation
    equals the base's, none improves on the first, and patience 1 stops at the second."""
    argv = recipe_argv(chat_lm_dir, chat_files, tmp_path / "o", "--learning-rate", 0, "--patience", 1,
                       "--eval-steps", 1, "--max-steps", 50)
    argv.remove("--patience"), argv.remove("100")
    report = main(argv)
    log = train_log(tmp_path / "o")
    assert [h["step"] for h in log] == [1, 2] and report["steps"] == 2 and report["best_step"] == 1
    assert report["eval_loss"] == pytest.approx(report["base_eval_loss"], abs=1e-5)  # evaluated again on the best


# ---- (2) QLoRA, through the CLI ---------------------------------------------------------------------


def test_qlora_trains_and_saves(chat_lm_dir, chat_files, tmp_path):
    out = tmp_path / "qlora"
    # --grad-accum 2: 5 micro-batches per epoch make steps of 2, 2 and 1; an evaluation at step 3
    # then more training checks the CPU 4-bit fix (finetune/classifier_recipe.py).
    argv = recipe_argv(chat_lm_dir, chat_files, out, "--qlora", "--max-steps", 6, "--grad-accum", 2)
    assert cli.main(["finetune", "chat", *argv]) == 0
    log = train_log(out)
    assert [h["step"] for h in log] == list(range(1, 7))
    assert [h["step"] for h in log if "eval_loss" in h] == [3, 6]  # the end of each epoch
    assert all(np.isfinite(h["loss"]) for h in log)
    meta = json.loads((out / "supportbot.json").read_text())
    assert meta["quantization"] == "nf4" and meta["hyperparameters"]["bits"] == 4
    assert meta["hyperparameters"]["gradient_checkpointing"] == "on"  # the default for a quantized base
    assert "QLoRA" in (out / "README.md").read_text()
    assert (out / "adapter_model.safetensors").is_file()
    report = json.loads((out / "eval_report.json").read_text())
    assert np.isfinite(report["perplexity"]) and np.isfinite(report["base_perplexity"])
    served = evaluate_chat(str(out), chat_files["eval"], tmp_path / "cache")  # on the full-precision base
    assert np.isfinite(served["perplexity"])


# ---- gradient checkpointing ------------------------------------------------------------------------


@pytest.mark.parametrize(("flags", "expected"), [
    ([], "off"),  # fp32 LoRA: speed first
    (["--qlora"], "on"), (["--bits", "8"], "on"),  # a quantized base: memory first, as QLoRA does
    (["--gradient-checkpointing", "on"], "on"), (["--qlora", "--gradient-checkpointing", "off"], "off"),
    (["--qlora", "--gradient-checkpointing", "auto"], "on"),
])
def test_gradient_checkpointing_defaults_to_on_for_a_quantized_base(flags, expected):
    assert parse_args(ChatArgs, ["--train", "x.jsonl", *flags]).gradient_checkpointing == expected


def test_gradient_checkpointing_from_yaml(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("qlora: true\ngradient_checkpointing: off\n")  # YAML reads off as false
    assert parse_args(ChatArgs, ["--config", str(config)]).gradient_checkpointing == "off"
    config.write_text("gradient_checkpointing: on\n")
    assert parse_args(ChatArgs, ["--config", str(config)]).gradient_checkpointing == "on"


def test_gradient_checkpointing_trains_the_same_steps(lora_run, chat_lm_dir, chat_files, tmp_path):
    """Recomputing the activations saves memory, not work: with dropout 0 a LoRA run with
    checkpointing on takes lora_run's steps (checkpointing off, the fp32 default) and lowers the loss."""
    out = tmp_path / "gc"
    report = main(recipe_argv(chat_lm_dir, chat_files, out, "--max-steps", 20, "--gradient-checkpointing", "on"))
    log, reference = train_log(out), train_log(lora_run["out"])
    assert [h["step"] for h in log] == list(range(1, 21))
    np.testing.assert_allclose([h["loss"] for h in log], [h["loss"] for h in reference], rtol=1e-4)
    assert report["eval_loss"] < report["base_eval_loss"] - 0.3
    assert report["eval_loss"] == pytest.approx(lora_run["report"]["eval_loss"], rel=1e-4)
    meta = json.loads((out / "supportbot.json").read_text())
    assert meta["hyperparameters"]["gradient_checkpointing"] == "on"
    assert json.loads((lora_run["out"] / "supportbot.json").read_text())["hyperparameters"]["gradient_checkpointing"] == "off"
    assert '"gradient_checkpointing": "on"' in (out / "README.md").read_text()


def test_gradient_checkpointing_runs_each_layer_again_in_the_backward_pass(chat_lm_dir, chat_files, tmp_path):
    """Counted with a global forward pre-hook (a pre-hook: the recomputation stops once it has
    what the backward pass needs, before the MLP returns)."""
    import torch
    from transformers.models.llama.modeling_llama import LlamaMLP

    calls = {}

    def count(module, _args):
        if isinstance(module, LlamaMLP):
            calls[flag] += 1

    handle = torch.nn.modules.module.register_module_forward_pre_hook(count)
    try:
        for flag in ("off", "on"):
            calls[flag] = 0
            main(recipe_argv(chat_lm_dir, chat_files, tmp_path / flag, "--max-steps", 2, "--gradient-checkpointing", flag))
    finally:
        handle.remove()
    assert calls["on"] - calls["off"] == 2 * 2  # 2 steps x 2 layers; the evaluations are the same


# ---- (3) resume after kill -9 -----------------------------------------------------------------------


def _read_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):  # not there yet, or being replaced right now
        return None


def test_resume_after_kill(chat_lm_dir, chat_files, tmp_path, caplog):
    out = tmp_path / "run"
    state_file = out / "checkpoint" / "state.json"
    argv = recipe_argv(chat_lm_dir, chat_files, out, "--save-steps", 2)
    log_path = tmp_path / "first.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "finetune.chat_recipe", *argv, "--max-steps", "5000"],
                                cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT, env=os.environ.copy())
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                assert proc.poll() is None, "the run ended before it could be killed:\n" + log_path.read_text()[-3000:]
                state = _read_state(state_file)
                if state and state["step"] > 0:
                    break
                time.sleep(0.02)
            else:
                pytest.fail("no checkpoint within 180 s:\n" + log_path.read_text()[-3000:])
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL
    saved = _read_state(state_file) or _read_state(out / "checkpoint.old" / "state.json")  # killed mid-save
    assert saved is not None, "kill -9 left no readable checkpoint"
    step = saved["step"]
    assert 0 < step < 5000
    assert not (out / "supportbot.json").exists()  # it really was killed mid-run

    caplog.set_level(logging.INFO, logger="supportbot.finetune")
    report = main([*argv, "--max-steps", str(step + 4), "--resume"])
    assert f"resuming at step {step}" in caplog.text
    log = train_log(out)
    assert [h["step"] for h in log] == list(range(1, step + 5))  # continued, not restarted
    assert log[:step] == saved["history"]
    assert report["steps"] == step + 4
    assert report["base_perplexity"] == saved["base_report"]["perplexity"]  # not measured again


# ---- (4) bad input: every problem at once, with file and line, before any weights load ---------------


def test_bad_conversations_are_reported_with_file_and_line(chat_lm_dir, chat_files, tmp_path):
    bad = tmp_path / "bad.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})
    bad.write_text("\n".join([
        good,
        '{"messages": [',
        json.dumps({"text": "hi", "label": "x"}),
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "hello"}]}),
        json.dumps({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]}),
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]}),
        "",
        json.dumps({"messages": [{"role": "user", "content": ["hi"]}, {"role": "assistant", "content": "x"}]}),
    ]) + "\n")
    out = tmp_path / "out"
    with pytest.raises(InputError) as info:
        main(recipe_argv(chat_lm_dir, {"train": bad, "eval": chat_files["eval"]}, out))
    message = str(info.value)
    for needle in (f"{bad}:2: not JSON", f'{bad}:3: expected an object with "messages"',
                   f"{bad}:4: message 2 has unknown role 'bot' (use system, user or assistant)",
                   f"{bad}:5: no assistant message", f"{bad}:6: message 2 (assistant) has empty content",
                   f"{bad}:8: message 1 (user): content must be a string"):
        assert needle in message, needle
    assert f"{bad}:1:" not in message
    assert not out.exists()  # nothing was created


def test_bad_flags_are_reported_together(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError) as info:
        main(["--train", str(tmp_path / "missing.jsonl"), "data.jsonl@heavy", "--eval", str(tmp_path / "nope.jsonl"),
              "--bits", "3", "--gradient-checkpointing", "sometimes", "--epochs", "0", "--eval-fraction", "0.7", "--batch-size", "0", "--max-length", "8",
              "--resume", "--output", str(out), "--record", "false"])
    message = str(info.value)
    for needle in ("missing.jsonl: no such file", "the weight after @ must be a number", "nope.jsonl: no such file",
                   "--bits must be 4 or 8", "--gradient-checkpointing must be on, off or auto (got 'sometimes')",
                   "--epochs or --max-steps must be positive",
                   "--eval-fraction must be in (0, 0.5)", "--batch-size and --grad-accum must be >= 1",
                   "--max-length must be at least 16", "--resume: no checkpoint"):
        assert needle in message, needle
    assert not out.exists()


def test_a_base_without_chat_template_needs_one(tiny_causal_lm_dir, chat_files, tmp_path):
    with pytest.raises(InputError, match="has no chat template"):
        main(recipe_argv(tiny_causal_lm_dir, chat_files, tmp_path / "o", "--max-steps", 1))
    template = tmp_path / "chatml.jinja"
    template.write_text(tiny.CHAT_TEMPLATE)
    main(recipe_argv(tiny_causal_lm_dir, chat_files, tmp_path / "o", "--max-steps", 1, "--chat-template", template))
    assert (tmp_path / "o" / "chat_template.jinja").read_text() == tiny.CHAT_TEMPLATE  # saved with the adapter


def test_init_from_continues_an_adapter(lora_run, chat_lm_dir, chat_files, tmp_path):
    """At learning rate 0 the continued adapter is the first one: the same perplexity."""
    report = main(recipe_argv(chat_lm_dir, chat_files, tmp_path / "o", "--init-from", lora_run["out"],
                              "--learning-rate", 0, "--max-steps", 1))
    assert report["perplexity"] == pytest.approx(lora_run["report"]["perplexity"], rel=1e-5)
    assert report["base_perplexity"] == pytest.approx(lora_run["report"]["base_perplexity"], rel=1e-5)
    meta = json.loads((tmp_path / "o" / "supportbot.json").read_text())
    assert meta["init_from"] == str(lora_run["out"]) and meta["lora"]["r"] == 8
    with pytest.raises(InputError, match="was trained on base"):
        main(recipe_argv("smollm2-135m", chat_files, tmp_path / "x", "--init-from", lora_run["out"]))


# ---- scripts/prepare_chat_data.py ----------------------------------------------------------------------


def _prepare_module():
    spec = importlib.util.spec_from_file_location("prepare_chat_data", REPO / "scripts" / "prepare_chat_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prepare_chat_data_replaces_placeholders(tmp_path, capsys):
    prep = _prepare_module()
    bitext = tmp_path / "datasets" / "bitext_customer_support"
    bitext.mkdir(parents=True)
    responses = {
        "cancel_order": ["Log into our {{Website Name}}, open the {{Order History}} section and cancel the order "
                         "with the number {{Order Number}}. Call {{Customer Support Phone Number}} if needed.",
                         "Visit {{Website Name}} and click {{Frobnicate Widget}}. We are available "
                         "{{Customer Support Hours}} via {{Live Chat}}."],
        "track_order": ["Find the {{Tracking Panel}} tab on your {{Website Name}} account.",
                        "Please give me your order number."],
    }
    with open(bitext / "Bitext_Sample_Customer_Support_Training_Dataset.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["flags", "instruction", "category", "intent", "response"])
        for intent, texts in responses.items():
            for i, text in enumerate(texts):
                writer.writerow(["B", f"{intent} question {i}", "ORDER", intent, text])
    stc3 = tmp_path / "datasets" / "stc3_helpdesk"
    stc3.mkdir()
    turns = [{"sender": "customer", "utterances": ["手机坏了", ""]}, {"sender": "customer", "utterances": ["怎么办"]},
             {"sender": "helpdesk", "utterances": ["", "您好"]}, {"sender": "helpdesk", "utterances": ["请私信"]},
             {"sender": "customer", "utterances": ["好的"]}]
    dialogues = [{"id": "1", "turns": turns}, {"id": "2", "turns": [{"sender": "customer", "utterances": ["在吗"]},
                                                                    {"sender": "helpdesk", "utterances": [""]}]}]
    for split in ("train", "test"):
        (stc3 / f"{split}_data_cn.json").write_text(json.dumps(dialogues, ensure_ascii=False), encoding="utf-8")

    out = tmp_path / "chat"
    prep.main(["--datasets", str(tmp_path / "datasets"), "--out", str(out), "--test-fraction", "0.5"])
    printed = capsys.readouterr().out
    assert "bitext_train.jsonl: 2 conversations" in printed and "stc3_zh_test.jsonl: 1 conversations" in printed

    train = chat_data.read_conversations(out / "bitext_train.jsonl")  # valid chat JSONL
    test = chat_data.read_conversations(out / "bitext_test.jsonl")
    for split in (train, test):  # stratified: one of each intent's two questions
        assert sorted(c.messages[1]["content"].split()[0] for c in split) == ["cancel_order", "track_order"]
    replies = {c.messages[1]["content"]: c.messages[2]["content"] for c in train + test}
    for c in train + test:
        assert c.messages[0] == {"role": "system", "content": prep.SYSTEM}
    assert prep.SYSTEM == ("You are the customer service assistant of Lumo Shop, an online shop. "
                           "Answer briefly and politely in the customer's language.")
    assert not any("{" in r or "}" in r for r in replies.values())
    assert replies["cancel_order question 0"] == (
        "Log into our website, open the order history section and cancel the order with your order number. "
        "Call our customer service phone number if needed.")
    assert replies["cancel_order question 1"] == (
        'Visit our website and click "Frobnicate Widget". '
        "We are available during our business hours via our live chat.")
    assert replies["track_order question 0"] == "Find the tracking panel tab on your Lumo Shop account."

    (zh,) = [c.messages for c in chat_data.read_conversations(out / "stc3_zh_train.jsonl")]
    assert zh[1:] == ({"role": "user", "content": "手机坏了\n怎么办"}, {"role": "assistant", "content": "您好\n请私信"})
    assert zh[0]["content"] == prep.SYSTEM


def test_placeholder_fallbacks():
    prep = _prepare_module()
    r = prep.replace_placeholders
    assert r("Go to the {{Refund Portal}} or {{Help Center}} page.") == "Go to the refund portal or help center page."
    assert r("Reach us at {{Customer Support Email}} or {{Customer Support Phone Number}}.") == (
        "Reach us at our customer service email address or customer service phone number.")
    assert r('Press "{{Save}}".') == 'Press "Save".'
    assert r("1. {{Damaged Item}}: we refund it.") == "1. Damaged Item: we refund it."
    assert r("Look for an option to {{Edit}} or {{Change}} it.") == 'Look for an option to "Edit" or "Change" it.'
    assert r("At {{Company Name}}, refunds take {{number of days}} days.") == "At Lumo Shop, refunds take a few days."
    assert r("Sorry, {{Name Field Anonymized}}, I will help.") == "Sorry, I will help."
    assert r("Call [Customer Support Phone Number] from [start time] to [end time].\r\n\r\n"
             "[continue answering with the rest of the INSTRUCTIONS]") == (
        "Call our customer service phone number during our business hours.")
