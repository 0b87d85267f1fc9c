"""Supervised chat fine-tuning (SFT) of a causal LM with LoRA or QLoRA.

    supportbot finetune chat --train data/chat/bitext_train.jsonl --eval data/chat/bitext_test.jsonl \
        --base smollm2-135m --output runs/chat-bitext [--qlora | --bits 8] [--resume]

    # several GPUs, unchanged:
    accelerate launch -m finetune.chat_recipe --train data/chat/bitext_train.jsonl ...

    # a plain model directory for vLLM / TGI / transformers:
    supportbot finetune merge runs/chat-bitext --output runs/chat-bitext-merged

Data: chat JSONL, one {"messages": [{"role": "system"|"user"|"assistant", "content": ...}, ...]}
per line (OpenAI fine-tuning format, finetune/chat_data.py). Conversations are rendered with
the base tokenizer's chat template and the loss counts assistant tokens only.

Reads top to bottom: setup (arguments, data, tokenizer, model, the base's perplexity) -> train
(evaluation every --eval-steps and at each epoch end, early stopping on eval loss, checkpoints)
-> evaluate (the best weights) -> save (adapter + tokenizer + supportbot.json + model card +
eval report + loss plot). A killed run continues from its last checkpoint with --resume.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.adapter_artifact import write_meta
from core.errors import InputError
from finetune import chat_data
from finetune import data as datalib
from finetune.args import parse_args
from finetune.chat_data import DEFAULT_MAX_LENGTH
from finetune.chat_model import load_base_lm, load_tokenizer
from finetune.checkpoint import (copy_mapped_weights, enable_gradient_checkpointing, keep_4bit_weights_trainable_on_cpu,
                                 load_checkpoint, load_trainable, recover_checkpoint, rewrite_base_reference,
                                 save_checkpoint, save_trainable)
from finetune.training import init_from_problems

log = logging.getLogger("supportbot.finetune")



@dataclass
class ChatArgs:
    train: list[str] = field(default_factory=list, metadata={"help": "chat JSONL file(s), FILE[@WEIGHT]"})
    eval: str | None = field(default=None, metadata={"help": "eval chat JSONL; default: hold out --eval-fraction of train"})
    base: str = field(default="smollm2-135m", metadata={"help": "base causal LM: packaged name, directory or hub id"})
    output: str = field(default="runs/chat", metadata={"help": "output directory (adapter, report, checkpoints)"})
    epochs: float = field(default=2.0, metadata={"help": "passes over the training data (fractions allowed)"})
    max_steps: int = field(default=0, metadata={"help": "stop after this many optimizer steps (0: no limit)"})
    max_train_samples: int = field(default=0, metadata={"help": "train on a random subset of this many conversations (0: all)"})
    batch_size: int = field(default=8, metadata={"help": "conversations per micro-batch (per device)"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches accumulated per optimizer step"})
    # 2e-4 is the QLoRA paper's rate for models up to 13B (Dettmers et al. 2023, Table 9).
    learning_rate: float = field(default=2e-4, metadata={"help": "peak learning rate (linear warm-up then decay)"})
    warmup_ratio: float = field(default=0.03, metadata={"help": "fraction of steps spent warming up"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_length: int = field(default=DEFAULT_MAX_LENGTH, metadata={"help": "tokens per conversation; longer ones are cut at the end"})
    # rank 16 on every linear projection: QLoRA found all-layer LoRA matters more than the rank.
    lora_r: int = field(default=16, metadata={"help": "LoRA rank; higher: more capacity and memory"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA path"})
    lora_target: str = field(default="all-linear", metadata={"help": "modules that get LoRA: all-linear (every projection, not lm_head) or comma-separated names"})
    qlora: bool = field(default=False, metadata={"help": "load the base quantized (nf4 4-bit) and train LoRA on top"})
    bits: int = field(default=0, metadata={"help": "quantize the base to 4 or 8 bits (4 = --qlora)"})
    # Activations, not weights, fill the memory of a small model (fp32, batch x length x layers):
    # recomputing them in the backward pass stores about one layer's, for one more forward pass
    # per step (about a third more compute). auto: on for a quantized base, as QLoRA does
    # (Dettmers et al. 2023) and peft's prepare_model_for_kbit_training by default; off for fp32.
    gradient_checkpointing: str = field(default="auto", metadata={"help": "recompute activations in the backward pass (less memory, slower steps): on, off or auto (on with --qlora/--bits)"})
    init_from: str | None = field(default=None, metadata={"help": "continue training this chat adapter directory (same base)"})
    chat_template: str | None = field(default=None, metadata={"help": "jinja chat template file, for a base whose tokenizer has none"})
    eval_fraction: float = field(default=0.05, metadata={"help": "held-out share when no --eval file is given"})
    max_eval_samples: int = field(default=0, metadata={"help": "evaluate on a random subset of this many conversations (0: all)"})
    eval_steps: int = field(default=0, metadata={"help": "also evaluate every N optimizer steps (0: once per epoch)"})
    patience: int = field(default=3, metadata={"help": "early stopping: evaluations without a lower eval loss"})
    save_steps: int = field(default=50, metadata={"help": "checkpoint every N optimizer steps"})
    seed: int = field(default=42, metadata={"help": "random seed (data order, subsets, init, dropout)"})
    resume: bool = field(default=False, metadata={"help": "continue from the checkpoint in --output"})
    version: str | None = field(default=None, metadata={"help": "version name recorded in the adapter; default: the output directory's name"})
    record: bool = field(default=True, metadata={"help": "record the run and the model version in the database"})
    database_url: str | None = field(default=None, metadata={"help": "database for the run record; default: settings"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: all cores)"})

    def __post_init__(self):
        if isinstance(self.train, str):
            self.train = [self.train]
        if self.qlora and self.bits == 0:
            self.bits = 4
        if isinstance(self.gradient_checkpointing, bool):  # YAML reads a bare on/off as a boolean
            self.gradient_checkpointing = "on" if self.gradient_checkpointing else "off"
        if self.gradient_checkpointing == "auto":  # resolved here, so the saved hyperparameters say which
            self.gradient_checkpointing = "on" if self.bits else "off"

    def validate(self) -> None:
        """Report every problem at once, before any weights load."""
        problems = []
        if not self.train:
            problems.append("--train is required")
        for spec in self.train:
            try:
                src = datalib.Source.parse(spec)
                if not src.path.is_file():
                    problems.append(f"--train {src.path}: no such file")
            except InputError as exc:
                problems.append(str(exc))
        if self.eval and not Path(self.eval).is_file():
            problems.append(f"--eval {self.eval}: no such file")
        if self.init_from:
            problems += init_from_problems(self.init_from, self.base, task="chat")
        if self.chat_template and not Path(self.chat_template).is_file():
            problems.append(f"--chat-template {self.chat_template}: no such file")
        if self.bits not in (0, 4, 8):
            problems.append("--bits must be 4 or 8")
        if self.qlora and self.bits == 8:
            problems.append("--qlora means 4-bit; use --bits 8 alone for 8-bit")
        if self.gradient_checkpointing not in ("on", "off"):
            problems.append(f"--gradient-checkpointing must be on, off or auto (got {self.gradient_checkpointing!r})")
        if self.epochs <= 0 and self.max_steps <= 0:
            problems.append("--epochs or --max-steps must be positive")
        if self.max_steps < 0 or self.max_train_samples < 0 or self.max_eval_samples < 0 or self.eval_steps < 0:
            problems.append("--max-steps, --max-train-samples, --max-eval-samples and --eval-steps must be >= 0")
        if not 0 < self.eval_fraction < 0.5:
            problems.append("--eval-fraction must be in (0, 0.5)")
        if self.batch_size < 1 or self.grad_accum < 1:
            problems.append("--batch-size and --grad-accum must be >= 1")
        if self.max_length < 16:
            problems.append("--max-length must be at least 16 tokens")
        if self.lora_r < 1 or not 0 <= self.lora_dropout < 1:
            problems.append("--lora-r must be >= 1 and --lora-dropout in [0, 1)")
        if self.patience < 1 or self.save_steps < 1:
            problems.append("--patience and --save-steps must be >= 1")
        if self.resume:
            recover_checkpoint(Path(self.output) / "checkpoint")
            if not (Path(self.output) / "checkpoint" / "state.json").is_file():
                problems.append(f"--resume: no checkpoint in {self.output}/checkpoint")
        if problems:
            raise InputError("; ".join(problems))


def build_lora_config(args: ChatArgs):
    from peft import LoraConfig, TaskType

    targets = args.lora_target if args.lora_target == "all-linear" else [m.strip() for m in args.lora_target.split(",")]
    return LoraConfig(task_type=TaskType.CAUSAL_LM, r=args.lora_r, lora_alpha=args.lora_alpha,
                      lora_dropout=args.lora_dropout, target_modules=targets)


def build_bnb_config(args: ChatArgs):
    """BitsAndBytesConfig for --qlora / --bits, or None. lm_head (tied to the embeddings) stays full precision."""
    if not args.bits:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    if args.bits == 4:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=torch.float32, llm_int8_skip_modules=["lm_head"])
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=["lm_head"])


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffle, then sort within windows of 50 batches, so a batch has similar lengths
    (copied from finetune/classifier_recipe.py)."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(ChatArgs, argv)
    args.validate()
    return run(args)


def run(args: ChatArgs) -> dict:
    # ---- setup -------------------------------------------------------------------
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from core.config import settings_with
    from core.model_refs import resolve
    from finetune.perplexity import perplexity
    from finetune.run_record import RunRecorder

    settings = settings_with(database_url=args.database_url)
    if args.threads:
        torch.set_num_threads(args.threads)
    set_seed(args.seed)
    out = Path(args.output)
    ckpt_dir = out / "checkpoint"
    accelerator = Accelerator()  # gradient accumulation is done below, so a short last group is exact

    sources = [datalib.Source.parse(s) for s in args.train]
    source_rows = [chat_data.read_conversations(s.path) for s in sources]
    train_rows = chat_data.mix([(rows, s.weight) for rows, s in zip(source_rows, sources)], args.seed)
    if args.eval:
        eval_rows = chat_data.read_conversations(args.eval)
        eval_keys = {c.key for c in eval_rows}
        overlap = sum(c.key in eval_keys for c in train_rows)
        train_rows = [c for c in train_rows if c.key not in eval_keys]
        if overlap:
            log.warning("dropped %d training conversations that are also in --eval", overlap)
    else:
        train_rows, eval_rows = chat_data.split(train_rows, args.eval_fraction, args.seed)
    rng = random.Random(args.seed)
    if args.max_train_samples and len(train_rows) > args.max_train_samples:
        train_rows = rng.sample(train_rows, args.max_train_samples)
    if args.max_eval_samples and len(eval_rows) > args.max_eval_samples:
        eval_rows = random.Random(args.seed).sample(eval_rows, args.max_eval_samples)

    base = resolve(args.base, settings.model_cache_dir)
    if base.adapter:
        raise InputError(f"--base {args.base!r} is an adapter; give its base model (see its supportbot.json), "
                         "or continue it with --init-from")
    chat_template = Path(args.chat_template).read_text(encoding="utf-8") if args.chat_template else None
    tokenizer = load_tokenizer(base, chat_template)
    train_enc, dropped_train = chat_data.encode_all(tokenizer, train_rows, args.max_length)
    eval_enc, dropped_eval = chat_data.encode_all(tokenizer, eval_rows, args.max_length)
    if dropped_train or dropped_eval:
        log.warning("dropped %d training and %d eval conversations with no assistant token within --max-length %d",
                    dropped_train, dropped_eval, args.max_length)
    if not train_enc or not eval_enc:
        raise InputError(f"no {'training' if not train_enc else 'eval'} conversation has an assistant token "
                         f"within --max-length {args.max_length}")
    n_tokens = sum(len(ids) for ids, _ in train_enc)
    log.info("train %d conversations (%d tokens, %d trained), eval %d", len(train_enc), n_tokens,
             sum(sum(l != chat_data.IGNORE_INDEX for l in labels) for _, labels in train_enc), len(eval_enc))
    pad_id = tokenizer.pad_token_id
    out.mkdir(parents=True, exist_ok=True)  # the data is good: from here on the run leaves files

    def evaluate(m) -> dict:
        return perplexity(m, chat_data.eval_batches(eval_enc, args.batch_size, pad_id))

    # Quantized weights are placed while loading (bitsandbytes models refuse .to()).
    model = load_base_lm(base, quantization_config=build_bnb_config(args),
                         device_map={"": str(accelerator.device)} if args.bits else None)
    if args.bits:
        # The weights left in full precision still point into the mapped file, which keeps every
        # page read while quantizing resident: copy them out so the file is let go.
        log.info("copied %.0f MiB of unquantized weights off the mapped weights file", copy_mapped_weights(model) / 2**20)
    if args.bits == 4:
        keep_4bit_weights_trainable_on_cpu(model)  # before the first (eval) forward
    elif not args.bits:
        model.to(accelerator.device)
    saved_state = json.loads((ckpt_dir / "state.json").read_text()) if args.resume else {}
    base_report = saved_state.get("base_report") or evaluate(model)  # the base without adapter, once per run
    log.info("base model: eval loss %.4f, perplexity %.2f", base_report["eval_loss"], base_report["perplexity"])

    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training

    if args.bits:  # checkpointing is enabled below, the same way for every base
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if args.gradient_checkpointing == "on":
        enable_gradient_checkpointing(model)
    if args.init_from:
        model = PeftModel.from_pretrained(model, args.init_from, is_trainable=True)
        lora_config = model.peft_config["default"]
    else:
        lora_config = build_lora_config(args)
        model = get_peft_model(model, lora_config)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_total = sum(p.numel() for p in model.parameters())
    log.info("trainable parameters: %d of %d (%.2f%%)", n_trainable, n_total, 100 * n_trainable / n_total)

    lengths = [len(ids) for ids, _ in train_enc]
    n_batches = len(length_grouped_batches(lengths, args.batch_size, args.seed)) // accelerator.num_processes
    steps_per_epoch = math.ceil(n_batches / args.grad_accum)
    total_steps = args.max_steps or math.ceil(steps_per_epoch * args.epochs)
    n_epochs = math.ceil(total_steps / steps_per_epoch)

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=args.learning_rate, weight_decay=args.weight_decay)
    warmup = int(total_steps * args.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / max(1, warmup), max(0.0, (total_steps - s) / max(1, total_steps - warmup))))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    state = {"epoch": 0, "batch_in_epoch": 0, "step": 0, "best": None, "best_step": None,
             "bad_evals": 0, "history": [], "elapsed_s": 0.0, "base_report": base_report}
    if args.resume:
        state = load_checkpoint(ckpt_dir, accelerator.unwrap_model(model), optimizer, scheduler)
        log.info("resuming at step %d (epoch %d, batch %d)", state["step"], state["epoch"], state["batch_in_epoch"])

    data_files = [{"path": str(s.path), "weight": s.weight, "sha256": datalib.sha256_file(s.path), "rows": len(rows)}
                  for s, rows in zip(sources, source_rows)]
    recorder = RunRecorder.start(settings if args.record else None, task="chat", kind="chat",
                                 config=asdict(args), data=data_files, output_dir=str(out), resume=args.resume)
    with recorder:  # a run that raises is recorded as failed

        # ---- train -------------------------------------------------------------------
        model.train()
        bar = tqdm(total=total_steps, initial=state["step"], desc="finetune chat", unit="step",
                   disable=not accelerator.is_local_main_process, dynamic_ncols=True, file=sys.stderr)
        stop, seen, t0, micro_losses, last_eval = state["step"] >= total_steps, 0, time.monotonic(), [], None  # resumed with no steps left: train nothing
        best_dir = out / "best"
        for epoch in range(state["epoch"], n_epochs if not stop else 0):
            batches = length_grouped_batches(lengths, args.batch_size, args.seed + epoch)
            # Under `accelerate launch`, each process takes an equal share of the batches (DDP).
            batches = batches[accelerator.process_index :: accelerator.num_processes][:n_batches]
            start_batch = state["batch_in_epoch"] if epoch == state["epoch"] else 0
            for b, idx in enumerate(batches[start_batch:], start=start_batch):
                group_start = b - b % args.grad_accum
                group_size = min(args.grad_accum, len(batches) - group_start)
                sync = b + 1 == group_start + group_size
                batch = {k: v.to(accelerator.device)
                         for k, v in chat_data.collate([train_enc[i] for i in idx], pad_id).items()}
                with contextlib.nullcontext() if sync else accelerator.no_sync(model):
                    loss = model(**batch).loss  # mean over this micro-batch's assistant tokens
                    accelerator.backward(loss / group_size)
                micro_losses.append(loss.item())
                seen += len(idx)
                if not sync:
                    continue
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                step_loss, micro_losses = sum(micro_losses) / len(micro_losses), []
                state["step"] += 1
                state["epoch"], state["batch_in_epoch"] = epoch, b + 1
                rate = seen / (time.monotonic() - t0)
                state["history"].append({"step": state["step"], "loss": step_loss, "lr": scheduler.get_last_lr()[0]})
                bar.set_postfix(loss=f"{step_loss:.4f}", samples_s=f"{rate:.2f}", epoch=epoch + 1)
                bar.update(1)
                recorder.progress(state["step"] / total_steps)
                end_of_epoch = b + 1 == len(batches)
                if end_of_epoch or (args.eval_steps and state["step"] % args.eval_steps == 0) or state["step"] >= total_steps:
                    report = evaluate(accelerator.unwrap_model(model))
                    last_eval = (state["step"], report)
                    state["history"][-1].update(eval_loss=report["eval_loss"], eval_perplexity=report["perplexity"])
                    tqdm.write(f"step {state['step']}: eval loss {report['eval_loss']:.4f} perplexity "
                               f"{report['perplexity']:.2f} (base {base_report['perplexity']:.2f})", file=sys.stderr)
                    if state["best"] is None or report["eval_loss"] < state["best"]:
                        state.update(best=report["eval_loss"], best_step=state["step"], bad_evals=0)
                        save_trainable(accelerator.unwrap_model(model), best_dir)
                    else:
                        state["bad_evals"] += 1
                        if state["bad_evals"] >= args.patience:
                            tqdm.write(f"early stopping: no lower eval loss in {args.patience} evaluations", file=sys.stderr)
                            stop = True
                if state["step"] % args.save_steps == 0 or end_of_epoch or stop or state["step"] >= total_steps:
                    if end_of_epoch:
                        state["epoch"], state["batch_in_epoch"] = epoch + 1, 0
                    state["elapsed_s"] += time.monotonic() - t0
                    t0, seen = time.monotonic(), 0
                    save_checkpoint(ckpt_dir, accelerator.unwrap_model(model), optimizer, scheduler, state)
                if stop or state["step"] >= total_steps:
                    stop = True
                    break
            if stop:
                break
        bar.close()

        # ---- evaluate (the best weights) -----------------------------------------------
        unwrapped = accelerator.unwrap_model(model)
        if last_eval and last_eval[0] == state["best_step"] == state["step"]:
            report = dict(last_eval[1])  # the weights in memory are the best: evaluated just now
        else:
            if best_dir.is_dir():
                load_trainable(unwrapped, best_dir)
            report = evaluate(unwrapped)
        report.update(base_eval_loss=base_report["eval_loss"], base_perplexity=base_report["perplexity"],
                      n_eval=len(eval_enc), best_step=state["best_step"], steps=state["step"],
                      train_rows=len(train_enc), dropped_train=dropped_train, dropped_eval=dropped_eval,
                      train_seconds=round(state["elapsed_s"], 1))

        # ---- save ----------------------------------------------------------------------
        if not accelerator.is_main_process:
            return report
        version = args.version or out.resolve().name
        meta = {
            "format": 1, "kind": "chat", "task": "chat", "version": version, "base": args.base,
            "max_length": args.max_length,
            "lora": {"r": lora_config.r, "alpha": lora_config.lora_alpha, "dropout": lora_config.lora_dropout,
                     "target_modules": args.lora_target if not args.init_from
                     else lora_config.target_modules if isinstance(lora_config.target_modules, str)
                     else sorted(lora_config.target_modules)},
            "quantization": {4: "nf4", 8: "int8"}.get(args.bits), "data": data_files, "eval_file": args.eval,
            "init_from": args.init_from, "hyperparameters": asdict(args),
            "metrics": {k: report[k] for k in ("eval_loss", "perplexity", "base_perplexity", "n_eval")},
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        unwrapped.save_pretrained(out)
        rewrite_base_reference(out, args.base)
        tokenizer.save_pretrained(out)
        write_meta(out, meta)
        (out / "eval_report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
        (out / "train_log.jsonl").write_text("\n".join(json.dumps(h) for h in state["history"]) + "\n")
        from finetune import plots

        plots.loss_curve(state["history"], out / "loss.png")
        _write_model_card(out, meta, report)
        shutil.rmtree(best_dir, ignore_errors=True)
        recorder.finish(metrics=meta["metrics"], version=version, base=args.base, path=str(out.resolve()))
        print(f"saved {out} | eval loss {report['eval_loss']:.4f} | perplexity {report['perplexity']:.2f} "
              f"(base {report['base_perplexity']:.2f})", file=sys.stderr)
        return report


def _write_model_card(out: Path, meta: dict, report: dict) -> None:
    """README.md for a chat adapter (finetune/model_card.py writes the classifiers' cards)."""
    hp = meta["hyperparameters"]
    data = "\n".join(f"- `{d['path']}`: {d['rows']} conversations, weight {d['weight']}, sha256 `{d['sha256']}`"
                     for d in meta["data"])
    flags = {k: v for k, v in hp.items() if k not in ("train", "database_url", "record")}
    evaluation = (f"`{meta['eval_file']}`" if meta.get("eval_file")
                  else f"{hp['eval_fraction']:.0%} held out from the training data")
    text = f"""# {meta['version']}

Chat model: a LoRA adapter (rank {meta['lora']['r']}, alpha {meta['lora']['alpha']}) on `{meta['base']}`{
    f", base quantized to {meta['quantization']} while training (QLoRA)" if meta.get('quantization') else ''}.
Made by supportbot's `finetune/chat_recipe.py` on {meta['created_at']}{
    f", continuing the adapter `{meta['init_from']}`" if meta.get('init_from') else ''}.
Loss on assistant turns only; conversations cut to {meta['max_length']} tokens.
Serve it as is, or merge it into a plain model directory: `supportbot finetune merge THIS_DIR --output DIR`.

## Data
{data}

Evaluation: {evaluation} ({report['n_eval']} conversations, {report['eval_tokens']} assistant tokens).

## Metrics (best checkpoint, step {report.get('best_step')} of {report['steps']})
| model | eval loss | perplexity |
|---|---|---|
| base `{meta['base']}` | {report['base_eval_loss']:.4f} | {report['base_perplexity']:.2f} |
| this adapter | {report['eval_loss']:.4f} | **{report['perplexity']:.2f}** |

![loss](loss.png)

## Hyper-parameters
```json
{json.dumps(flags, indent=2)}
```
"""
    (out / "README.md").write_text(text, encoding="utf-8")


# ---- checkpoints (copied from finetune/classifier_recipe.py) ------------------------------------


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
