"""Fine-tuning speed and memory: LoRA vs full fine-tuning, and QLoRA (nf4) vs LoRA (fp32).

    python scripts/bench_finetune.py --threads 1     # the full run (about 4 minutes on 2 cores; 1 thread: steadier when shared)
    python scripts/bench_finetune.py --quick         # a check that every configuration runs
    python scripts/bench_finetune.py --configs chat-lora,chat-qlora --batch-size 8 --seq-len 384

Configurations (--configs); all but the -gc ones run with the recipe's defaults, as a user would:

  chat-full     finetune/chat_recipe.py's model (smollm2-135m, fp32) with every weight trainable (the
                chat recipe has no --full-finetune; this is the classifier's baseline, on chat)
  chat-lora     `finetune chat`: fp32 LoRA, gradient checkpointing off (its default for fp32)
  chat-qlora    `finetune chat --qlora`: nf4 base, gradient checkpointing on (its default for a
                quantized base), unquantized weights copied off the mapped weights file
  chat-lora-gc  `finetune chat --gradient-checkpointing on`: not a default, the like-for-like
                baseline for chat-qlora (they differ only in the base's precision)
  cls-full, cls-lora (cls-lora-gc, cls-qlora on request): the same on finetune/classifier_recipe.py
                (minilm-l6), full being its --full-finetune

The models are built by the recipes' own functions (chat_model.load_base_lm / classifier.load_base_classifier,
build_lora_config, build_bnb_config, copy_mapped_weights, prepare_model_for_kbit_training,
keep_4bit_weights_trainable_on_cpu, enable_gradient_checkpointing) with the recipes' default
hyperparameters (LoRA rank 16, alpha 32, dropout on all linear layers but the head; nf4 with
double quantization; AdamW), so this measures what `supportbot finetune chat|classifier` trains.
The step is the recipes' step: forward, loss (assistant tokens for chat, cross-entropy on the
label for the classifier), backward, AdamW step, zero_grad.

Two QLoRA-vs-LoRA memory ratios are reported, each against the target (QLoRA's peak <= 50% of
LoRA's): "qlora / lora" compares the recipe defaults, so it counts what gradient checkpointing
saves as well as what 4-bit weights save; "qlora / lora-gc" compares like for like (both
checkpointed), so it counts only the 4-bit weights (and the copied-off map).

Every configuration runs in its own fresh process (`--worker NAME`), so its peak RSS is its own.
Every batch has exactly --batch-size examples of exactly --seq-len tokens (cut, then padded and
masked), the same examples for every configuration of a model. Per configuration:

  samples/s     --batch-size / the median step time over --steps timed steps after --warmup steps
  baseline      RSS after the imports and the tokenized data, before the model loads
  load peak     the process's high-water RSS (VmHWM) once the model, adapter and optimizer exist
  train peak    VmHWM during training only (reset by writing 5 to /proc/self/clear_refs once
                the model is ready, after gc and malloc_trim)
  process peak  max(load peak, train peak): the whole process's peak RSS
  anon peaks    the highest private memory (RssAnon, polled every 5 ms) while loading / training.
                RSS also counts the pages of mapped files, and transformers maps the fp32
                safetensors rather than copying them, so RSS and RssAnon tell different stories
  model state   tensor bytes of the weights (4-bit ones with their quantization constants), the
                gradients and the AdamW state: what the methods change by design. Independent of
                batch and length, unlike the activations, which grow with batch x length

With --repeats R each configuration runs R times (fresh processes) and every number is the
median. Prints tables and writes --json (machine, date, arguments, the command, every run).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import cpu_name  # noqa: E402

CHAT_DATA = ROOT / "data/chat/bitext_train.jsonl"
CLASSIFIER_DATA = ROOT / "data/sentiment/en_train.csv"
# name: (model family, method, the recipe's --gradient-checkpointing: "auto" is its default)
CONFIGS = {
    "chat-full": ("chat", "full", "auto"), "chat-lora": ("chat", "lora", "auto"),
    "chat-qlora": ("chat", "qlora", "auto"), "chat-lora-gc": ("chat", "lora", "on"),
    "cls-full": ("cls", "full", "auto"), "cls-lora": ("cls", "lora", "auto"),
    "cls-qlora": ("cls", "qlora", "auto"), "cls-lora-gc": ("cls", "lora", "on"),
}
DEFAULT_CONFIGS = "chat-full,chat-lora,chat-lora-gc,chat-qlora,cls-full,cls-lora"
# (numerator, denominator, what the ratio compares); QLoRA rows are checked against the target
COMPARISONS = (
    ("lora", "full", "LoRA vs full fine-tuning, both recipe defaults"),
    ("lora-gc", "lora", "what gradient checkpointing costs (speed) and saves (memory) on fp32 LoRA"),
    ("qlora", "lora", "recipe defaults: nf4 + checkpointing on vs fp32 + checkpointing off"),
    ("qlora", "lora-gc", "like for like: nf4 vs fp32, both with checkpointing on"),
)
QLORA_TARGET = 0.5  # the issue's target: QLoRA's peak memory <= 50% of LoRA's
MiB = 1024 * 1024


# ---- memory readings ------------------------------------------------------------------------
def parse_status(text: str) -> dict[str, int]:
    """The kB fields of /proc/<pid>/status (VmRSS, VmHWM, RssAnon, RssFile, ...) as bytes."""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            fields[key.strip()] = int(parts[0]) * 1024
    return fields


def status() -> dict[str, int]:
    with open("/proc/self/status") as fh:
        return parse_status(fh.read())


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc), so RSS is live memory."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class AnonPeak(threading.Thread):
    """The highest RssAnon seen, polled every `interval` seconds. RSS (VmHWM) also counts the
    pages of mapped files, such as the safetensors weights transformers maps instead of copying;
    RssAnon is the process's private memory. Polling can miss a spike shorter than `interval`."""

    def __init__(self, interval: float = 0.005):
        super().__init__(daemon=True)
        self.interval, self.peak, self._done = interval, 0, threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, status().get("RssAnon", 0))
            time.sleep(self.interval)

    def reset(self) -> int:
        """The peak so far; then start again from the current value."""
        peak, self.peak = max(self.peak, status().get("RssAnon", 0)), status().get("RssAnon", 0)
        return peak

    def stop(self) -> int:
        self._done.set()
        self.join()
        return max(self.peak, status().get("RssAnon", 0))


def rss_fields(s: dict[str, int]) -> dict[str, float]:
    return {"rss_mib": s["VmRSS"] / MiB, "anon_mib": s.get("RssAnon", 0) / MiB, "file_mib": s.get("RssFile", 0) / MiB}


# ---- the worker: one configuration in this process --------------------------------------
def fixed_length_batch(items: list[tuple[list[int], list[int]]], length: int, pad_id: int) -> dict:
    """finetune.chat_data.collate, then right-padded to exactly `length` tokens (pads: masked out, no loss)."""
    import torch.nn.functional as F

    from finetune import chat_data

    batch = chat_data.collate([(ids[:length], labels[:length]) for ids, labels in items], pad_id)
    extra = length - batch["input_ids"].shape[1]
    return {"input_ids": F.pad(batch["input_ids"], (0, extra), value=pad_id),
            "attention_mask": F.pad(batch["attention_mask"], (0, extra), value=0),
            "labels": F.pad(batch["labels"], (0, extra), value=chat_data.IGNORE_INDEX)}


def chat_batches(args, n_batches: int):
    """n_batches batches of args.batch_size conversations from the chat data, each exactly args.seq_len
    tokens, encoded as finetune/chat_recipe.py does (assistant-only labels)."""
    from core.config import settings_with
    from core.model_refs import resolve
    from finetune import chat_data
    from finetune.chat_recipe import ChatArgs
    from finetune.chat_model import load_tokenizer

    base = resolve(ChatArgs().base, settings_with().model_cache_dir)
    tokenizer = load_tokenizer(base)
    rows = chat_data.read_conversations(CHAT_DATA)
    need = n_batches * args.batch_size
    picked = random.Random(args.seed).sample(rows, min(len(rows), 2 * need))
    encoded, _ = chat_data.encode_all(tokenizer, picked, args.seq_len)
    if len(encoded) < need:
        raise SystemExit(f"only {len(encoded)} conversations have an assistant token within {args.seq_len} tokens")
    batches = [fixed_length_batch(encoded[b * args.batch_size : (b + 1) * args.batch_size], args.seq_len,
                                  tokenizer.pad_token_id) for b in range(n_batches)]
    return base, batches, {"tokens_real": int(sum(b["attention_mask"].sum() for b in batches)),
                           "tokens_trained": int(sum((b["labels"] != chat_data.IGNORE_INDEX).sum() for b in batches)),
                           "tokens_total": n_batches * args.batch_size * args.seq_len}


def cls_batches(args, n_batches: int):
    """n_batches batches of texts from the sentiment data, each exactly args.seq_len tokens."""
    import torch
    from transformers import AutoTokenizer

    from core.config import settings_with
    from core.model_refs import resolve
    from finetune import data as datalib
    from finetune.classifier_recipe import ClassifierArgs

    base = resolve(ClassifierArgs().base, settings_with().model_cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(base.path, local_files_only=base.local)
    rows = datalib.read_examples(CLASSIFIER_DATA)
    labels = sorted({e.label for e in rows})
    picked = random.Random(args.seed).sample(rows, n_batches * args.batch_size)
    enc = tokenizer([e.text for e in picked], truncation=True, max_length=args.seq_len, padding="max_length",
                    return_tensors="pt")
    y = torch.tensor([labels.index(e.label) for e in picked])
    batches = [{"input_ids": enc["input_ids"][i : i + args.batch_size],
                "attention_mask": enc["attention_mask"][i : i + args.batch_size],
                "y": y[i : i + args.batch_size]} for i in range(0, len(picked), args.batch_size)]
    return base, batches, {"labels": labels, "tokens_total": n_batches * args.batch_size * args.seq_len,
                           "tokens_real": int(enc["attention_mask"].sum())}


def build_model(family: str, method: str, checkpointing: str, base, labels: list[str] | None):
    """The model as the recipe builds it for this method, in the recipe's order; also the bytes
    copied off the mapped weights file."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    from finetune.checkpoint import copy_mapped_weights, enable_gradient_checkpointing, keep_4bit_weights_trainable_on_cpu

    copied = 0
    if family == "chat":
        from finetune.chat_recipe import ChatArgs, build_bnb_config, build_lora_config
        from finetune.chat_model import load_base_lm

        recipe_args = ChatArgs(qlora=method == "qlora", gradient_checkpointing=checkpointing)
        # As finetune/chat_recipe.py: 4-bit weights are quantized while loading (bitsandbytes models refuse .to()).
        model = load_base_lm(base, quantization_config=build_bnb_config(recipe_args),
                             device_map={"": "cpu"} if recipe_args.bits else None)
        if recipe_args.bits:
            copied = copy_mapped_weights(model)
            keep_4bit_weights_trainable_on_cpu(model)
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        from bot.classifier import load_base_classifier
        from finetune.classifier_recipe import ClassifierArgs, build_bnb_config, build_lora_config

        recipe_args = ClassifierArgs(qlora=method == "qlora", full_finetune=method == "full",
                                     gradient_checkpointing=checkpointing)
        _, model = load_base_classifier(base, labels, quantization_config=build_bnb_config(recipe_args))
        if recipe_args.bits:
            copied = copy_mapped_weights(model)
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
            keep_4bit_weights_trainable_on_cpu(model)
    if recipe_args.gradient_checkpointing == "on":
        enable_gradient_checkpointing(model)
    if method != "full":
        model = get_peft_model(model, build_lora_config(recipe_args))
    return model, recipe_args, copied


def state_bytes(model, optimizer) -> dict[str, int]:
    """Tensor bytes of the weights (with 4-bit quantization constants), gradients and optimizer state."""
    import torch

    weights = 0
    for t in [*model.parameters(), *model.buffers()]:
        weights += t.numel() * t.element_size()
        qs = getattr(t, "quant_state", None)
        nested = getattr(qs, "state2", None)
        for extra in (getattr(qs, "absmax", None), getattr(qs, "code", None), getattr(qs, "offset", None),
                      getattr(nested, "absmax", None), getattr(nested, "code", None)):
            if torch.is_tensor(extra):
                weights += extra.numel() * extra.element_size()
    grads = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    opt = sum(v.numel() * v.element_size() for st in optimizer.state.values() for v in st.values() if torch.is_tensor(v))
    return {"weights": weights, "grads": grads, "optimizer": opt, "total": weights + grads + opt}


def worker(args) -> int:
    import warnings

    warnings.filterwarnings("ignore")
    import bitsandbytes  # noqa: F401 - imported by every configuration (peft imports it anyway): same baseline
    import peft  # noqa: F401
    import torch
    import transformers  # noqa: F401

    family, method, checkpointing = CONFIGS[args.worker]
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    n_batches = args.warmup + args.steps
    base, batches, data_info = (chat_batches if family == "chat" else cls_batches)(args, n_batches)
    release_free_memory()
    baseline = status()
    anon = AnonPeak()
    anon.start()

    t = time.perf_counter()
    model, recipe_args, copied = build_model(family, method, checkpointing, base, data_info.get("labels"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=recipe_args.learning_rate, weight_decay=recipe_args.weight_decay)
    load_s = time.perf_counter() - t
    loaded = status()
    release_free_memory()
    ready = status()
    load_anon_peak = anon.reset()
    reset_ok = reset_peak_rss()

    model.train()
    loss_fn = torch.nn.CrossEntropyLoss()
    times, losses = [], []
    for batch in batches:
        t = time.perf_counter()
        if family == "chat":
            loss = model(**batch).loss
        else:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = loss_fn(logits.float(), batch["y"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - t)
        losses.append(loss.item())
    end = status()
    train_anon_peak = anon.stop()
    timed = times[args.warmup :]
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_stored = sum(p.numel() for p in model.parameters())  # a 4-bit weight counts its packed bytes
    train_peak = end["VmHWM"] if reset_ok else None
    result = {
        "config": args.worker, "family": family, "method": method, "base": recipe_args.base,
        "quantization": {4: "nf4", 8: "int8"}.get(recipe_args.bits, "fp32"),
        "gradient_checkpointing": recipe_args.gradient_checkpointing,  # resolved: "on" or "off"
        "recipe_defaults": checkpointing == "auto", "lora_dropout": None if method == "full" else recipe_args.lora_dropout,
        "copied_off_map_mib": copied / MiB,
        "batch_size": args.batch_size, "seq_len": args.seq_len, "warmup": args.warmup, "steps": args.steps,
        "threads": torch.get_num_threads(), **{k: v for k, v in data_info.items() if k != "labels"},
        "trainable_params": n_trainable, "param_elements_stored": n_stored,
        "samples_per_s": args.batch_size / statistics.median(timed),
        "samples_per_s_total": args.batch_size * len(timed) / sum(timed),
        "step_s_median": statistics.median(timed), "step_s": times, "loss": losses, "load_s": load_s,
        "baseline": rss_fields(baseline), "loaded": rss_fields(loaded), "ready": rss_fields(ready),
        "end": rss_fields(end),
        "load_peak_mib": loaded["VmHWM"] / MiB,
        "train_peak_mib": train_peak / MiB if train_peak else None,
        "process_peak_mib": max(loaded["VmHWM"], end["VmHWM"]) / MiB,
        "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        "hwm_reset": reset_ok,
        "load_anon_peak_mib": load_anon_peak / MiB, "train_anon_peak_mib": train_anon_peak / MiB,
        "state_mib": {k: v / MiB for k, v in state_bytes(model, optimizer).items()},
    }
    Path(args.worker_out).write_text(json.dumps(result, indent=2))
    return 0


# ---- the driver ------------------------------------------------------------------------------
def run_config(name: str, args) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = Path(fh.name)
    cmd = [sys.executable, __file__, "--worker", name, "--worker-out", str(out), "--threads", str(args.threads),
           "--seed", str(args.seed), "--warmup", str(args.warmup), "--steps", str(args.steps),
           "--batch-size", str(args.batch_size if CONFIGS[name][0] == "chat" else args.cls_batch_size),
           "--seq-len", str(args.seq_len if CONFIGS[name][0] == "chat" else args.cls_seq_len)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        if proc.returncode:
            raise SystemExit(f"{name} failed (exit {proc.returncode}):\n" + "\n".join(proc.stdout.splitlines()[-30:]))
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def summarize(runs: list[dict]) -> dict:
    """The median of every number over the repeats (the first run's lists are kept)."""
    first = runs[0]
    med = lambda get: statistics.median(get(r) for r in runs)  # noqa: E731
    summary = dict(first)
    for key in ("samples_per_s", "samples_per_s_total", "step_s_median", "load_s", "load_peak_mib",
                "process_peak_mib", "ru_maxrss_mib", "load_anon_peak_mib", "train_anon_peak_mib"):
        summary[key] = med(lambda r: r[key])
    if all(r["train_peak_mib"] is not None for r in runs):
        summary["train_peak_mib"] = med(lambda r: r["train_peak_mib"])
    for stage in ("baseline", "loaded", "ready", "end"):
        summary[stage] = {k: med(lambda r: r[stage][k]) for k in first[stage]}
    summary["repeats"] = len(runs)
    return summary


def machine(threads: int) -> dict:
    import torch
    import transformers

    cpu = cpu_name()
    import bitsandbytes
    import peft

    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": threads or torch.get_num_threads(),
            "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__, "bitsandbytes": bitsandbytes.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "memory_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "load_average_at_start": os.getloadavg(),
            "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS") if k in os.environ}}


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def comparisons(results: dict[str, dict]) -> list[dict]:
    """The COMPARISONS per model that ran: speed and memory ratios, the QLoRA rows against the
    issue's target."""
    rows = []
    for family in ("chat", "cls"):
        for num, den, what in COMPARISONS:
            a, b = results.get(f"{family}-{num}"), results.get(f"{family}-{den}")
            if not a or not b:
                continue
            row = {"compare": f"{family}: {num} / {den}", "numerator": a["config"], "denominator": b["config"],
                   "what": what,
                   "numerator_setup": {k: a[k] for k in ("quantization", "gradient_checkpointing", "recipe_defaults")},
                   "denominator_setup": {k: b[k] for k in ("quantization", "gradient_checkpointing", "recipe_defaults")},
                   "samples_per_s": ratio(a["samples_per_s"], b["samples_per_s"]),
                   "process_peak": ratio(a["process_peak_mib"], b["process_peak_mib"]),
                   "peak_above_baseline": ratio(a["process_peak_mib"] - a["baseline"]["rss_mib"],
                                                b["process_peak_mib"] - b["baseline"]["rss_mib"]),
                   "anon_peak": ratio(max(a["load_anon_peak_mib"], a["train_anon_peak_mib"]),
                                      max(b["load_anon_peak_mib"], b["train_anon_peak_mib"])),
                   "model_state": ratio(a["state_mib"]["total"], b["state_mib"]["total"])}
            if num == "qlora":
                row["target"] = QLORA_TARGET
                row["meets_target"] = {k: row[k] is not None and row[k] <= QLORA_TARGET
                                       for k in ("process_peak", "peak_above_baseline", "anon_peak", "model_state")}
            rows.append(row)
    return rows


def fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def print_tables(results: dict[str, dict], comps: list[dict]) -> None:
    print(f"\n{'config':<16} {'base':<13} {'quant':>5} {'ckpt':>4} {'defaults':>8} {'batch x len':>11} "
          f"{'trainable':>11} {'samples/s':>9} {'s/step':>7} {'load s':>6}")
    for name, r in results.items():
        print(f"{name:<16} {r['base']:<13} {r['quantization']:>5} {r['gradient_checkpointing']:>4} "
              f"{'yes' if r['recipe_defaults'] else 'no':>8} {str(r['batch_size']) + ' x ' + str(r['seq_len']):>11} "
              f"{r['trainable_params']:>11,} {r['samples_per_s']:>9.2f} {r['step_s_median']:>7.2f} {r['load_s']:>6.1f}")
    print("quant: the base's weights (fp32, or nf4 for QLoRA); ckpt: gradient checkpointing; defaults: yes if "
          "the recipe's defaults for that method, no if run with --gradient-checkpointing on")
    print(f"\n{'MiB':<16} {'baseline':>8} {'load pk':>8} {'train pk':>8} {'proc pk':>8} {'pk-base':>8} "
          f"{'anon ld':>8} {'anon tr':>8} {'file end':>8} {'state':>7} {'weights':>7} {'grads':>6} {'adamw':>6}")
    for name, r in results.items():
        st = r["state_mib"]
        print(f"{name:<16} {r['baseline']['rss_mib']:>8.0f} {r['load_peak_mib']:>8.0f} {fmt(r['train_peak_mib'], '>8.0f')} "
              f"{r['process_peak_mib']:>8.0f} {r['process_peak_mib'] - r['baseline']['rss_mib']:>8.0f} "
              f"{r['load_anon_peak_mib']:>8.0f} {r['train_anon_peak_mib']:>8.0f} {r['end']['file_mib']:>8.0f} "
              f"{st['total']:>7.0f} {st['weights']:>7.0f} {st['grads']:>6.0f} {st['optimizer']:>6.0f}")
    print("baseline: RSS after imports and data, before the model; load pk / train pk / proc pk: peak RSS while "
          "loading / while training / whole process (VmHWM); pk-base: proc pk - baseline; anon ld / anon tr: peak "
          "private (RssAnon) memory while loading / training, polled every 5 ms; file end: RSS of mapped files "
          "(weights transformers maps from safetensors, libraries) at the end; state: tensor bytes of weights + "
          "grads + AdamW state")
    if comps:
        print(f"\n{'ratio':<24} {'samples/s':>9} {'proc pk':>8} {'pk-base':>8} {'anon pk':>8} {'state':>7}  compares")
        for c in comps:
            print(f"{c['compare']:<24} {fmt(c['samples_per_s'], '>9.2f')} {fmt(c['process_peak'], '>8.2f')} "
                  f"{fmt(c['peak_above_baseline'], '>8.2f')} {fmt(c['anon_peak'], '>8.2f')} "
                  f"{fmt(c['model_state'], '>7.2f')}  {c['what']}")
            if "meets_target" in c:
                print(f"{'':<24} target qlora <= {c['target']:.2f} x lora: " + ", ".join(
                    f"{k} {'met' if ok else 'MISSED'}" for k, ok in c["meets_target"].items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default=DEFAULT_CONFIGS, help=f"comma list of {', '.join(CONFIGS)}")
    # Smaller than the recipes' defaults (chat 8 x up to 384, classifier 32 x up to 128) so the
    # full run takes minutes on 2 cores; memory ratios depend on it (activations grow with it).
    ap.add_argument("--batch-size", type=int, default=4, help="chat: conversations per step")
    ap.add_argument("--seq-len", type=int, default=128, help="chat: tokens per conversation (cut, then padded)")
    ap.add_argument("--cls-batch-size", type=int, default=16, help="classifier: texts per step")
    ap.add_argument("--cls-seq-len", type=int, default=64, help="classifier: tokens per text (cut, then padded)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (bitsandbytes' first steps are slow)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps (the median step time is reported)")
    ap.add_argument("--repeats", type=int, default=1, help="fresh processes per configuration (medians reported)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, all cores)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--quick", action="store_true", help="a check: 1 warm-up + 2 steps of small batches")
    ap.add_argument("--json", type=Path, default=ROOT / "runs/bench-finetune.json")
    ap.add_argument("--worker", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    if args.quick:
        args.warmup, args.steps, args.batch_size, args.seq_len, args.cls_batch_size, args.cls_seq_len = 1, 2, 2, 64, 8, 32
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    problems = [f"unknown configurations {unknown} (use {', '.join(CONFIGS)})"] if unknown else []
    if min(args.batch_size, args.seq_len, args.cls_batch_size, args.cls_seq_len, args.steps, args.repeats) < 1 or args.warmup < 0:
        problems.append("--batch-size, --seq-len, --cls-*, --steps and --repeats must be >= 1, --warmup >= 0")
    if problems:
        ap.error("; ".join(problems))

    started = time.monotonic()
    info = machine(args.threads)
    print(f"machine: {info}", flush=True)
    runs: dict[str, list[dict]] = {}
    for name in names:
        for i in range(args.repeats):
            t = time.monotonic()
            run = run_config(name, args)
            runs.setdefault(name, []).append(run)
            print(f"{name} run {i + 1}/{args.repeats}: {run['samples_per_s']:.2f} samples/s, process peak "
                  f"{run['process_peak_mib']:.0f} MiB, train peak {fmt(run['train_peak_mib'], '.0f')} MiB "
                  f"({time.monotonic() - t:.0f}s)", flush=True)
    results = {name: summarize(r) for name, r in runs.items()}
    comps = comparisons(results)
    print_tables(results, comps)
    wall = time.monotonic() - started
    print(f"\nwall time {wall:.0f}s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": " ".join(["python", "scripts/bench_finetune.py", *sys.argv[1:]]), "machine": info,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if not k.startswith("worker")},
            "wall_s": wall, "results": results, "comparisons": comps, "runs": runs}, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
