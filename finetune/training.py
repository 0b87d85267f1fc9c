"""What both recipes (finetune/chat_recipe.py, finetune/classifier_recipe.py) do the same
way, as small functions each recipe calls from its own setup / train / save, as torchtune
keeps its `training/` utilities under its recipes. No recipe base class: a recipe reads top
to bottom and calls these where it needs them.

    setup   TrainingFlags, *_problems (validate), start, lora_config, bnb_config,
            prepare_quantized, prepare_for_training, plan_steps, optimizer_and_scheduler,
            start_state, data_file, record_run
    train   train: micro-batches of similar length, exact gradient accumulation (a short
            last group of an epoch is averaged over its own size), evaluation every
            --eval-steps and at each epoch end, the best weights kept, early stopping after
            --patience evaluations without improvement, atomic checkpoints for --resume
    save    restore_best, adapter_meta, write_run_files, finish_run

Under `accelerate launch` (DDP) every process runs the same loop on its share of the
batches, and every process must make the same collective calls in the same order (DDP
syncs buffers at each forward and gradients at each step): so the first process alone
evaluates and writes files (checkpoints, best weights, the saved run), every process takes
its evaluation (`evaluate_everywhere`), keeps the same best step and stops at the same step,
and none reads the files before the first process has written them (`train` ends with a
barrier). The other processes would otherwise overwrite its checkpoint as it is written.
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
from typing import Callable

from core.adapter_artifact import FIELDS, META_FILE, is_adapter_dir, load_meta, write_meta
from core.errors import InputError
from finetune import data as datalib
from finetune.checkpoint import (copy_mapped_weights, enable_gradient_checkpointing, keep_4bit_weights_trainable_on_cpu,
                                 load_checkpoint, load_trainable, recover_checkpoint, save_checkpoint, save_trainable)

log = logging.getLogger("supportbot.finetune")

CHECKPOINT = "checkpoint"  # <output>/checkpoint: the last state, for --resume
BEST = "best"  # <output>/best: the best weights so far, gone once the run is saved


# ---- setup: flags ------------------------------------------------------------------------


@dataclass
class TrainingFlags:
    """The flags every recipe has, with the same meaning and default (a recipe's own flags
    dataclass adds the rest: data, base, output, schedule, LoRA dropout and targets...)."""
    max_steps: int = field(default=0, metadata={"help": "stop after this many optimizer steps (0: no limit)"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches accumulated per optimizer step"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank; higher: more capacity and memory"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)"})
    qlora: bool = field(default=False, metadata={"help": "load the base quantized (nf4 4-bit) and train LoRA on top"})
    bits: int = field(default=0, metadata={"help": "quantize the base to 4 or 8 bits (4 = --qlora)"})
    # Activations, not weights, fill the memory of a small model (batch x length x layers):
    # recomputing them in the backward pass stores about one layer's, for one more forward pass
    # per step (about a third more compute). auto: on for a quantized base, as QLoRA does
    # (Dettmers et al. 2023) and peft's prepare_model_for_kbit_training by default; off for fp32.
    gradient_checkpointing: str = field(default="auto", metadata={"help": "recompute activations in the backward pass (less memory, slower steps): on, off or auto (on with --qlora/--bits)"})
    eval_steps: int = field(default=0, metadata={"help": "also evaluate every N optimizer steps (0: once per epoch)"})
    save_steps: int = field(default=50, metadata={"help": "checkpoint every N optimizer steps"})
    resume: bool = field(default=False, metadata={"help": "continue from the checkpoint in --output"})
    record: bool = field(default=True, metadata={"help": "record the run and the model version in the database"})
    database_url: str | None = field(default=None, metadata={"help": "database for the run record; default: settings"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: all cores)"})

    def __post_init__(self):
        """One --train file as a list (every recipe has --train), --qlora as --bits 4, and
        --gradient-checkpointing auto resolved, so the saved hyperparameters say which."""
        if isinstance(self.train, str):
            self.train = [self.train]
        if self.qlora and self.bits == 0:
            self.bits = 4
        if isinstance(self.gradient_checkpointing, bool):  # YAML reads a bare on/off as a boolean
            self.gradient_checkpointing = "on" if self.gradient_checkpointing else "off"
        if self.gradient_checkpointing == "auto":
            self.gradient_checkpointing = "on" if self.bits else "off"


def source_problems(flag: str, specs: list[str]) -> list[str]:
    """FILE[@WEIGHT] specs that do not parse or name no file."""
    problems = []
    for spec in specs:
        try:
            src = datalib.Source.parse(spec)
            if not src.path.is_file():
                problems.append(f"{flag} {src.path}: no such file")
        except InputError as exc:
            problems.append(str(exc))
    return problems


def data_problems(args) -> list[str]:
    """--train (required, every file there) and --eval."""
    problems = [] if args.train else ["--train is required"]
    problems += source_problems("--train", args.train)
    if args.eval and not Path(args.eval).is_file():
        problems.append(f"--eval {args.eval}: no such file")
    return problems


def init_from_problems(directory: str | Path, base: str, task: str | None = None) -> list[str]:
    """What is wrong with --init-from DIRECTORY for a run on --base `base` (and of `task`)."""
    if not is_adapter_dir(directory):
        return [f"--init-from {directory}: not a supportbot adapter directory (no {META_FILE})"]
    try:
        meta = load_meta(directory)
    except (OSError, ValueError) as exc:
        return [f"--init-from {directory}: unreadable {META_FILE} ({exc})"]
    if task is not None and meta.get("task") != task:
        return [f"--init-from {directory} is a {meta.get('task')} adapter, not a {task} adapter"]
    if meta.get("base") != base:
        return [f"--init-from {directory} was trained on base {meta.get('base')!r}, not --base {base!r}"]
    return []


def quantization_problems(args) -> list[str]:
    problems = []
    if args.bits not in (0, 4, 8):
        problems.append("--bits must be 4 or 8")
    if args.qlora and args.bits == 8:
        problems.append("--qlora means 4-bit; use --bits 8 alone for 8-bit")
    return problems


def schedule_problems(args) -> list[str]:
    """--gradient-checkpointing, --epochs / --max-steps, --eval-fraction, --batch-size, --grad-accum."""
    problems = []
    if args.gradient_checkpointing not in ("on", "off"):
        problems.append(f"--gradient-checkpointing must be on, off or auto (got {args.gradient_checkpointing!r})")
    if args.epochs <= 0 and args.max_steps <= 0:
        problems.append("--epochs or --max-steps must be positive")
    if not 0 < args.eval_fraction < 0.5:
        problems.append("--eval-fraction must be in (0, 0.5)")
    if args.batch_size < 1 or args.grad_accum < 1:
        problems.append("--batch-size and --grad-accum must be >= 1")
    return problems


def resume_problems(args) -> list[str]:
    """--resume needs a checkpoint (one a kill left half-renamed is recovered first)."""
    if not args.resume:
        return []
    recover_checkpoint(Path(args.output) / CHECKPOINT)
    if not (Path(args.output) / CHECKPOINT / "state.json").is_file():
        return [f"--resume: no checkpoint in {args.output}/{CHECKPOINT}"]
    return []


# ---- setup: run, model, schedule ----------------------------------------------------------


def start(args):
    """(settings, output directory, Accelerator): torch threads and every seed set first."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from core.config import settings_with

    settings = settings_with(database_url=args.database_url)
    if args.threads:
        torch.set_num_threads(args.threads)
    set_seed(args.seed)
    # Gradient accumulation is done by `train`, so a short last group is exact. The learning
    # rate schedule counts this process's optimizer steps (plan_steps) and `train` steps it
    # once after each: by default accelerate's scheduler would step it once per process each
    # time, so on 2 processes the rate reached 0 halfway through the run.
    return settings, Path(args.output), Accelerator(step_scheduler_with_optimizer=False)


def lora_config(args, task_type: str, targets: str):
    """LoraConfig from the --lora-* flags; `targets`: all-linear or comma-separated module names."""
    from peft import LoraConfig, TaskType

    modules = targets if targets == "all-linear" else [m.strip() for m in targets.split(",")]
    return LoraConfig(task_type=getattr(TaskType, task_type), r=args.lora_r, lora_alpha=args.lora_alpha,
                      lora_dropout=args.lora_dropout, target_modules=modules)


def bnb_config(bits: int, keep: list[str]):
    """BitsAndBytesConfig for --bits 4 (nf4, double quantization) or 8, or None; the
    modules named in `keep` stay full precision (the list replaces bitsandbytes' default)."""
    if not bits:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    if bits == 4:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=torch.float32, llm_int8_skip_modules=keep)
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=keep)


def prepare_quantized(model):
    """A base just quantized while loading, made ready to train LoRA on top (before any forward)."""
    from peft import prepare_model_for_kbit_training

    # The weights left in full precision still point into the mapped file, which keeps every
    # page read while quantizing resident: copy them out so the file is let go.
    log.info("copied %.0f MiB of unquantized weights off the mapped weights file", copy_mapped_weights(model) / 2**20)
    keep_4bit_weights_trainable_on_cpu(model)
    # Gradient checkpointing is enabled by prepare_for_training, the same way for every base.
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def prepare_for_training(model, args, config):
    """Gradient checkpointing (--gradient-checkpointing on), then LoRA: the adapter of
    --init-from continued, or a new one from `config` (None: every weight trains).
    Returns (model, the LoRA config in use or None)."""
    if args.gradient_checkpointing == "on":
        enable_gradient_checkpointing(model)
    if config is not None:
        from peft import PeftModel, get_peft_model

        if args.init_from:
            model = PeftModel.from_pretrained(model, args.init_from, is_trainable=True)
            config = model.peft_config["default"]
        else:
            model = get_peft_model(model, config)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_total = sum(p.numel() for p in model.parameters())
    log.info("trainable parameters: %d of %d (%.2f%%)", n_trainable, n_total, 100 * n_trainable / n_total)
    return model, config


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffle, then sort within windows of 50 batches, so a batch has similar lengths."""
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


@dataclass(frozen=True)
class Schedule:
    lengths: list[int]  # tokens of each training row
    n_batches: int  # micro-batches per epoch on each process
    total_steps: int  # optimizer steps of the whole run
    n_epochs: int


def plan_steps(lengths: list[int], args, num_processes: int) -> Schedule:
    n_batches = len(length_grouped_batches(lengths, args.batch_size, args.seed)) // num_processes
    steps_per_epoch = math.ceil(n_batches / args.grad_accum)
    total_steps = args.max_steps or math.ceil(steps_per_epoch * args.epochs)
    return Schedule(lengths, n_batches, total_steps, math.ceil(total_steps / steps_per_epoch))


def epoch_batches(schedule: Schedule, args, epoch: int, accelerator) -> list[list[int]]:
    """This process's micro-batches of an epoch: under `accelerate launch` each process takes
    an equal share (DDP needs the same number of steps everywhere)."""
    batches = length_grouped_batches(schedule.lengths, args.batch_size, args.seed + epoch)
    return batches[accelerator.process_index :: accelerator.num_processes][: schedule.n_batches]


def optimizer_and_scheduler(model, args, total_steps: int):
    """AdamW on the trainable weights; the learning rate rises linearly over --warmup-ratio
    of the steps, then falls linearly to 0."""
    import torch

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=args.learning_rate, weight_decay=args.weight_decay)
    warmup = int(total_steps * args.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / max(1, warmup), max(0.0, (total_steps - s) / max(1, total_steps - warmup))))
    return optimizer, scheduler


def start_state(args, out: Path, model, optimizer, scheduler, **extra) -> dict:
    """The loop state (saved as checkpoint/state.json): a fresh one, or with --resume the
    checkpoint's, loaded into model, optimizer and scheduler. `extra`: recipe fields kept in it."""
    if not args.resume:
        return {"epoch": 0, "batch_in_epoch": 0, "step": 0, "best": None, "best_step": None,
                "bad_evals": 0, "history": [], "elapsed_s": 0.0, **extra}
    state = load_checkpoint(out / CHECKPOINT, model, optimizer, scheduler)
    log.info("resuming at step %d (epoch %d, batch %d)", state["step"], state["epoch"], state["batch_in_epoch"])
    return state


def data_file(source: datalib.Source, **extra) -> dict:
    """A training file as the run record and supportbot.json list it."""
    return {"path": str(source.path), "weight": source.weight, "sha256": datalib.sha256_file(source.path), **extra}


def record_run(settings, args, *, task: str, kind: str, data: list[dict], out: Path):
    """The run in the database (finetune.run_record), unless --record false; use it as a
    context manager, so a run that raises is recorded as failed."""
    from finetune.run_record import RunRecorder

    return RunRecorder.start(settings if args.record else None, task=task, kind=kind, config=asdict(args),
                             data=data, output_dir=str(out), resume=args.resume)


# ---- train -------------------------------------------------------------------------------


@dataclass
class Evaluation:
    """One evaluation during training, as the recipe reports it."""
    score: float  # what picks the best weights
    logged: dict  # added to this step's row of train_log.jsonl
    line: str  # printed under the progress bar
    report: dict


@dataclass
class Loop:
    """What `train` runs: the prepared model, optimizer and scheduler, and the recipe's two
    callbacks: the loss of a micro-batch (row indices) and an evaluation."""
    accelerator: object
    model: object
    optimizer: object
    scheduler: object
    micro_loss: Callable[[list[int]], object]
    evaluate: Callable[[], Evaluation]
    higher_is_better: bool  # of Evaluation.score
    stale: str  # the early-stopping message: "no improvement", ...
    desc: str  # the progress bar's label


def train(loop: Loop, state: dict, schedule: Schedule, args, out: Path, recorder) -> tuple[int, Evaluation] | None:
    """Train until --max-steps / --epochs or early stopping, from `state` (fresh or resumed);
    returns the last evaluation as (step, Evaluation), or None when no step was left."""
    from tqdm.auto import tqdm

    acc, model = loop.accelerator, loop.model
    model.train()
    bar = tqdm(total=schedule.total_steps, initial=state["step"], desc=loop.desc, unit="step",
               disable=not acc.is_local_main_process, dynamic_ncols=True, file=sys.stderr)
    stop = state["step"] >= schedule.total_steps  # resumed with no steps left: train nothing
    micro_losses, last_eval, seen, t0 = [], None, 0, time.monotonic()
    for epoch in range(state["epoch"], schedule.n_epochs if not stop else 0):
        batches = epoch_batches(schedule, args, epoch, acc)
        start_batch = state["batch_in_epoch"] if epoch == state["epoch"] else 0
        for b, idx in enumerate(batches[start_batch:], start=start_batch):
            group_start = b - b % args.grad_accum
            group_size = min(args.grad_accum, len(batches) - group_start)
            sync = b + 1 == group_start + group_size
            with contextlib.nullcontext() if sync else acc.no_sync(model):
                loss = loop.micro_loss(idx)
                acc.backward(loss / group_size)
            micro_losses.append(loss.item())
            seen += len(idx)
            if not sync:
                continue
            loop.optimizer.step()
            loop.scheduler.step()
            loop.optimizer.zero_grad()
            step_loss, micro_losses = mean_over_processes(acc, sum(micro_losses) / len(micro_losses)), []
            state["step"] += 1
            state["epoch"], state["batch_in_epoch"] = epoch, b + 1
            state["history"].append({"step": state["step"], "loss": step_loss, "lr": loop.scheduler.get_last_lr()[0]})
            bar.set_postfix(loss=f"{step_loss:.4f}", samples_s=f"{seen / (time.monotonic() - t0):.2f}", epoch=epoch + 1)
            bar.update(1)
            recorder.progress(state["step"] / schedule.total_steps)
            end_of_epoch, done = b + 1 == len(batches), state["step"] >= schedule.total_steps
            if end_of_epoch or (args.eval_steps and state["step"] % args.eval_steps == 0) or done:
                last_eval = (state["step"], evaluate_everywhere(loop))
                stop = keep_best(loop, state, last_eval[1], args.patience, out)
            if state["step"] % args.save_steps == 0 or end_of_epoch or stop or done:
                if end_of_epoch:
                    state["epoch"], state["batch_in_epoch"] = epoch + 1, 0
                state["elapsed_s"] += time.monotonic() - t0
                t0, seen = time.monotonic(), 0
                if acc.is_main_process:  # one writer: the processes' weights and state are the same
                    save_checkpoint(out / CHECKPOINT, acc.unwrap_model(model), loop.optimizer, loop.scheduler, state)
            if stop or done:
                stop = True
                break
        if stop:
            break
    bar.close()
    acc.wait_for_everyone()  # the checkpoint and best weights are written before any process reads them
    return last_eval


def mean_over_processes(acc, value: float) -> float:
    """A step's loss averaged over the processes (each saw its own batches); `value` itself
    on one process."""
    if acc.num_processes == 1:
        return value
    import torch

    return acc.reduce(torch.tensor(value, dtype=torch.float64, device=acc.device), "mean").item()


def evaluate_everywhere(loop: Loop) -> Evaluation:
    """The first process evaluates and every process gets its Evaluation, so all keep the same
    best step and stop early at the same step (a process that left the loop alone would leave
    the others waiting in DDP's next collective); the others wait meanwhile."""
    acc = loop.accelerator
    if acc.num_processes == 1:
        return loop.evaluate()
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([loop.evaluate() if acc.is_main_process else None])[0]


def keep_best(loop: Loop, state: dict, evaluation: Evaluation, patience: int, out: Path) -> bool:
    """Log an evaluation; save the weights if they are the best so far. True: stop early
    (`patience` evaluations in a row without improvement)."""
    from tqdm.auto import tqdm

    main = loop.accelerator.is_main_process  # every process decides the same (the same evaluation)
    state["history"][-1].update(evaluation.logged)
    if main:
        tqdm.write(evaluation.line, file=sys.stderr)
    best, score = state["best"], evaluation.score
    stop = False
    if best is None or (score > best if loop.higher_is_better else score < best):
        state.update(best=score, best_step=state["step"], bad_evals=0)
        if main:
            save_trainable(loop.accelerator.unwrap_model(loop.model), out / BEST)
    else:
        state["bad_evals"] += 1
        if state["bad_evals"] >= patience:
            if main:
                tqdm.write(f"early stopping: {loop.stale} in {patience} evaluations", file=sys.stderr)
            stop = True
    loop.model.train()  # an evaluation may have left it in eval mode
    return stop


# ---- save --------------------------------------------------------------------------------


def restore_best(model, out: Path) -> None:
    """Put the best weights of the run (if any evaluation saved them) back into `model`."""
    if (out / BEST).is_dir():
        load_trainable(model, out / BEST)


def adapter_meta(args, *, kind: str, task: str, version: str, data: list[dict], metrics: dict, **fields) -> dict:
    """supportbot.json's content: what every adapter records, with the recipe's own
    `fields` (lora, labels, teacher), in core.adapter_artifact.FIELDS order."""
    meta = {"format": 1, "kind": kind, "task": task, "version": version, "base": args.base,
            "max_length": args.max_length, "quantization": {4: "nf4", 8: "int8"}.get(args.bits), "data": data,
            "eval_file": args.eval, "init_from": args.init_from, "hyperparameters": asdict(args),
            "metrics": metrics, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **fields}
    return {k: meta[k] for k in FIELDS if k in meta}


def write_run_files(out: Path, meta: dict, report: dict, history: list[dict]) -> None:
    """supportbot.json, eval_report.json, train_log.jsonl and loss.png next to the weights."""
    from finetune import plots

    write_meta(out, meta)
    (out / "eval_report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    (out / "train_log.jsonl").write_text("\n".join(json.dumps(h) for h in history) + "\n")
    plots.loss_curve(history, out / "loss.png")


def finish_run(out: Path, recorder, meta: dict, base: str) -> None:
    """Drop the best-weights copy and record the finished run and its model version."""
    shutil.rmtree(out / BEST, ignore_errors=True)
    recorder.finish(metrics=meta["metrics"], version=meta["version"], base=base, path=str(out.resolve()))
