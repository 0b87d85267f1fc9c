"""Training on more than one process (issue 19): two processes under `accelerate launch`
(gloo on the CPU) run the classifier and chat recipes for a few steps on tiny random
models; the loss falls, one adapter is saved, and the run (and its model version) is
recorded once.

`accelerate launch --num_processes 2 --cpu` starts ONE process in accelerate 1.16 (--cpu
always takes its simple launcher; several CPU processes are meant for mpirun): checked
below. Two CPU processes come from `--multi_gpu --num_processes 2` with ACCELERATE_USE_CPU=1
(torchrun underneath, gloo), which is what these tests launch."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from fixtures import tiny
from storage.db import make_engine
from storage.models import FinetuneRun, ModelVersion

REPO = Path(__file__).resolve().parents[2]
ACCELERATE = Path(sys.executable).with_name("accelerate")


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    env.update(SUPPORTBOT_HOME=str(home), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               ACCELERATE_USE_CPU="1", CUDA_VISIBLE_DEVICES="")
    return env


def launch(module: str, argv: list[str], home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", module, *argv],
                          cwd=REPO, env=_env(home), capture_output=True, text=True, timeout=600)


def _ranks(tmp_path: Path, *flags: str) -> list[str]:
    script = tmp_path / "rank.py"
    script.write_text("import os\nfrom accelerate import Accelerator\na = Accelerator()\n"  # one write each
                      "os.write(1, f'rank {a.process_index} of {a.num_processes} on {a.device}\\n'.encode())\n")
    out = subprocess.run([str(ACCELERATE), "launch", *flags, "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", str(script)],
                         cwd=REPO, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    # the two processes share the pipe: find each line's text even if their writes interleave
    return sorted(re.findall(r"rank \d+ of \d+ on cpu(?::\d+)?", out.stdout))


@pytest.mark.slow
def test_which_launch_gives_two_cpu_processes(tmp_path):
    assert _ranks(tmp_path, "--cpu") == ["rank 0 of 1 on cpu"]
    assert _ranks(tmp_path, "--multi_gpu") == ["rank 0 of 2 on cpu:0", "rank 1 of 2 on cpu:0"]


def recorded(url: str) -> tuple[int, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            return (c.execute(sa.select(sa.func.count()).select_from(FinetuneRun)).scalar(),
                    c.execute(sa.select(sa.func.count()).select_from(ModelVersion)).scalar())
    finally:
        engine.dispose()


def check(out: Path, url: str, proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr[-4000:]
    history = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) >= 4 and sum(losses[-2:]) < sum(losses[:2]), losses  # the loss falls
    # the learning rate decays over the whole run (accelerate's scheduler, stepped once per
    # process, once reached 0 halfway and the second half learnt nothing)
    lrs = [h["lr"] for h in history]
    assert lrs[-1] == 0 and all(lr > 0 for lr in lrs[:-1]), lrs
    assert len(list(out.rglob("adapter_model.safetensors"))) == 1  # one adapter, not one per process
    assert recorded(url) == (1, 1), proc.stderr[-3000:]  # one run record, one model version


def test_only_the_first_process_records_the_run(tmp_path, monkeypatch):
    from core.config import settings_with
    from finetune.run_record import RunRecorder

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    settings = settings_with(home=tmp_path, database_url=url)
    monkeypatch.setenv("RANK", "1")
    assert RunRecorder.start(settings, task="sentiment", kind="classifier", config={}, data=[],
                             output_dir="x").session_factory is None
    monkeypatch.setenv("RANK", "0")
    assert RunRecorder.start(settings, task="sentiment", kind="classifier", config={}, data=[],
                             output_dir="x").session_factory is not None
    assert recorded(url) == (1, 0)


@pytest.mark.slow
def test_classifier_recipe_on_two_processes(tmp_path, tiny_base_dir, sentiment_files):
    out, url = tmp_path / "clf", f"sqlite:///{tmp_path / 'runs.db'}"
    proc = launch("finetune.classifier_recipe", [
        "--train", str(sentiment_files["train"]), "--eval", str(sentiment_files["eval"]), "--base", str(tiny_base_dir),
        "--output", str(out), "--batch-size", "8", "--learning-rate", "5e-3", "--lora-r", "8", "--lora-alpha", "16",
        "--lora-dropout", "0", "--patience", "100", "--threads", "1", "--max-steps", "8", "--record", "true",
        "--version", "tiny-ddp", "--database-url", url], tmp_path)
    check(out, url, proc)


@pytest.mark.slow
def test_chat_recipe_on_two_processes(tmp_path):
    lm = tiny.build_chat_lm(tmp_path / "chat-lm")
    conversations = tiny.chat_examples(50, seed=0)
    files = {"train": tmp_path / "train.jsonl", "eval": tmp_path / "eval.jsonl"}
    for name, rows in (("train", conversations[:40]), ("eval", conversations[40:])):
        files[name].write_text("".join(json.dumps(c) + "\n" for c in rows), encoding="utf-8")
    out, url = tmp_path / "chat", f"sqlite:///{tmp_path / 'runs.db'}"
    proc = launch("finetune.chat_recipe", [
        "--train", str(files["train"]), "--eval", str(files["eval"]), "--base", str(lm), "--output", str(out),
        "--batch-size", "4", "--learning-rate", "1e-2", "--lora-r", "8", "--lora-alpha", "16", "--lora-dropout", "0",
        "--patience", "100", "--threads", "1", "--max-steps", "8", "--record", "true", "--version", "chat-ddp",
        "--database-url", url], tmp_path)
    check(out, url, proc)
