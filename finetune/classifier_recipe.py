"""Fine-tune a sequence classifier (sentiment, intent: any label set) with LoRA or QLoRA.

    supportbot finetune classifier --task sentiment --train data.csv [--eval dev.csv] \
        --base minilm-l6 --output runs/sentiment-en [--qlora | --bits 8] [--resume]

    # distillation: a slow teacher labels unlabelled texts too; the student learns both
    supportbot finetune classifier --task sentiment --train zh.csv --base me5-small \
        --teacher sentiment-zh --unlabelled reviews.csv [--distill-alpha 0.5 --temperature 2]

    # several GPUs, unchanged:
    accelerate launch -m finetune.classifier_recipe --task sentiment --train data.csv ...

Reads top to bottom: setup (arguments, data, model) -> train (with per-epoch eval, early
stopping and checkpoints) -> evaluate -> save (adapter + head + label map + model card +
eval report with plots). A killed run continues from its last checkpoint with --resume.
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
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.adapter_artifact import read_meta, write_meta
from core.errors import InputError
from finetune import data as datalib
from finetune.args import parse_args
from finetune.checkpoint import (copy_mapped_weights, enable_gradient_checkpointing, keep_4bit_weights_trainable_on_cpu,
                                 load_checkpoint, load_trainable, recover_checkpoint, rewrite_base_reference,
                                 save_checkpoint, save_trainable)
from finetune.training import init_from_problems

log = logging.getLogger("supportbot.finetune")


@dataclass
class ClassifierArgs:
    task: str = field(default="sentiment", metadata={"help": "sentiment or intent; the label set itself comes from the data"})
    train: list[str] = field(default_factory=list, metadata={"help": "training file(s), FILE[@WEIGHT]; CSV/TSV/JSONL text,label"})
    eval: str | None = field(default=None, metadata={"help": "eval file; default: hold out --eval-fraction of train"})
    base: str = field(default="minilm-l6", metadata={"help": "base model: packaged name, directory or hub id"})
    output: str = field(default="runs/classifier", metadata={"help": "output directory (adapter, report, checkpoints)"})
    labels: str | None = field(default=None, metadata={"help": "comma-separated label order; default: sorted labels of the data"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the training data (fractions allowed)"})
    max_steps: int = field(default=0, metadata={"help": "stop after this many optimizer steps (0: no limit)"})
    batch_size: int = field(default=32, metadata={"help": "examples per optimizer step (per device)"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches accumulated per optimizer step"})
    # 2e-4..1e-3 is the usual LoRA range; the head is trained from scratch at the same rate.
    learning_rate: float = field(default=5e-4, metadata={"help": "peak learning rate (linear warm-up then decay)"})
    warmup_ratio: float = field(default=0.06, metadata={"help": "fraction of steps spent warming up"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_length: int = field(default=128, metadata={"help": "tokens per text; longer texts are truncated"})
    # rank 8..16 is plenty for classification (LoRA paper, Hu et al. 2021, Table 6).
    lora_r: int = field(default=16, metadata={"help": "LoRA rank; higher: more capacity and memory"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)"})
    lora_dropout: float = field(default=0.1, metadata={"help": "dropout on the LoRA path"})
    target_modules: str = field(default="all-linear", metadata={"help": "modules that get LoRA: all-linear or comma-separated names"})
    init_from: str | None = field(default=None, metadata={"help": "continue training this supportbot adapter directory (same base and labels)"})
    full_finetune: bool = field(default=False, metadata={"help": "train all weights instead of LoRA (baseline)"})
    qlora: bool = field(default=False, metadata={"help": "load the base quantized (nf4 4-bit) and train LoRA on top"})
    bits: int = field(default=0, metadata={"help": "quantize the base to 4 or 8 bits (4 = --qlora)"})
    # Recomputing the activations in the backward pass stores about one layer's instead of all
    # of them (batch x length x layers), for one more forward pass per step. auto: on for a
    # quantized base, as QLoRA does (Dettmers et al. 2023) and peft's
    # prepare_model_for_kbit_training by default; off for fp32.
    gradient_checkpointing: str = field(default="auto", metadata={"help": "recompute activations in the backward pass (less memory, slower steps): on, off or auto (on with --qlora/--bits)"})
    # Distillation (Hinton et al. 2015, "Distilling the knowledge in a neural network"): a
    # teacher classifier's probabilities, softened by --temperature, are a second target.
    teacher: str | None = field(default=None, metadata={"help": "distil from this classifier (model reference or adapter directory): its soft labels on --train and --unlabelled texts become targets; its labels must include ours"})
    unlabelled: list[str] = field(default_factory=list, metadata={"help": "texts without labels for the teacher to label, FILE[@WEIGHT]; CSV/TSV/JSONL with a text column (needs --teacher)"})
    distill_alpha: float = field(default=0.5, metadata={"help": "weight of the teacher's soft labels on labelled rows (1 - alpha on the gold label); unlabelled rows learn from the teacher alone"})
    # T > 1 shows the student the teacher's ranking of the wrong labels; the loss is scaled by
    # T^2 so its gradients keep their size as T changes (Hinton et al. 2015, section 2).
    temperature: float = field(default=2.0, metadata={"help": "softmax temperature of the distillation loss"})
    # AMX tiles run bf16 matrix products ~4x faster than fp32 on the same cores (core.hardware);
    # weights, optimizer state and the loss stay fp32 (autocast), so only activations round.
    bf16: str = field(default="auto", metadata={"help": "compute forward passes in bf16 (autocast): on, off or auto (on where the CPU has AMX, off with --qlora/--bits)"})
    class_weights: bool = field(default=False, metadata={"help": "weight the loss by inverse class frequency"})
    eval_fraction: float = field(default=0.1, metadata={"help": "held-out share when no --eval file is given"})
    max_eval_samples: int = field(default=0, metadata={"help": "evaluate on at most this many examples during training (0: all)"})
    eval_steps: int = field(default=0, metadata={"help": "also evaluate every N optimizer steps (0: once per epoch)"})
    patience: int = field(default=2, metadata={"help": "early stopping: evaluations without improvement"})
    metric: str = field(default="macro_f1", metadata={"help": "metric that selects the best checkpoint: macro_f1 or accuracy"})
    save_steps: int = field(default=50, metadata={"help": "checkpoint every N optimizer steps"})
    seed: int = field(default=42, metadata={"help": "random seed (data order, init, dropout)"})
    resume: bool = field(default=False, metadata={"help": "continue from the checkpoint in --output"})
    version: str | None = field(default=None, metadata={"help": "version name recorded in the adapter; default: task-date"})
    record: bool = field(default=True, metadata={"help": "record the run and the model version in the database"})
    database_url: str | None = field(default=None, metadata={"help": "database for the run record; default: settings"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: all cores)"})

    def __post_init__(self):
        if isinstance(self.train, str):
            self.train = [self.train]
        if isinstance(self.unlabelled, str):
            self.unlabelled = [self.unlabelled]
        if self.qlora and self.bits == 0:
            self.bits = 4
        if isinstance(self.gradient_checkpointing, bool):  # YAML reads a bare on/off as a boolean
            self.gradient_checkpointing = "on" if self.gradient_checkpointing else "off"
        if self.gradient_checkpointing == "auto":  # resolved here, so the saved hyperparameters say which
            self.gradient_checkpointing = "on" if self.bits else "off"
        if isinstance(self.bf16, bool):
            self.bf16 = "on" if self.bf16 else "off"
        if self.bf16 == "auto":  # resolved here too, so the saved hyperparameters say which
            from core.hardware import resolve_bf16

            self.bf16 = "on" if resolve_bf16("auto", quantized=bool(self.bits)) else "off"

    def validate(self) -> None:
        """Report every problem at once, before any weights load."""
        problems = []
        if self.task not in ("sentiment", "intent"):
            problems.append(f"--task must be sentiment or intent (got {self.task!r}); the label set comes from the data")
        if not self.train:
            problems.append("--train is required")
        for spec in self.train:
            try:
                src = datalib.Source.parse(spec)
                if not src.path.is_file():
                    problems.append(f"--train {src.path}: no such file")
            except InputError as exc:
                problems.append(str(exc))
        for spec in self.unlabelled:
            try:
                src = datalib.Source.parse(spec)
                if not src.path.is_file():
                    problems.append(f"--unlabelled {src.path}: no such file")
            except InputError as exc:
                problems.append(str(exc))
        if self.unlabelled and not self.teacher:
            problems.append("--unlabelled texts are labelled by a --teacher; give one")
        if not 0 <= self.distill_alpha <= 1:
            problems.append("--distill-alpha must be in [0, 1]")
        if self.temperature <= 0:
            problems.append("--temperature must be positive")
        if self.eval and not Path(self.eval).is_file():
            problems.append(f"--eval {self.eval}: no such file")
        if self.init_from:
            problems += init_from_problems(self.init_from, self.base)
            if self.full_finetune:
                problems.append("--init-from continues a LoRA adapter; drop --full-finetune")
        if self.bits not in (0, 4, 8):
            problems.append("--bits must be 4 or 8")
        if self.qlora and self.bits == 8:
            problems.append("--qlora means 4-bit; use --bits 8 alone for 8-bit")
        if self.full_finetune and self.bits:
            problems.append("--full-finetune cannot train quantized weights; drop --qlora/--bits")
        if self.gradient_checkpointing not in ("on", "off"):
            problems.append(f"--gradient-checkpointing must be on, off or auto (got {self.gradient_checkpointing!r})")
        if self.bf16 not in ("on", "off"):
            problems.append(f"--bf16 must be on, off or auto (got {self.bf16!r})")
        if self.epochs <= 0 and self.max_steps <= 0:
            problems.append("--epochs or --max-steps must be positive")
        if not 0 < self.eval_fraction < 0.5:
            problems.append("--eval-fraction must be in (0, 0.5)")
        if self.metric not in ("macro_f1", "accuracy"):
            problems.append("--metric must be macro_f1 or accuracy")
        if self.batch_size < 1 or self.grad_accum < 1:
            problems.append("--batch-size and --grad-accum must be >= 1")
        if self.resume:
            recover_checkpoint(Path(self.output) / "checkpoint")
        if self.resume and not (Path(self.output) / "checkpoint" / "state.json").is_file():
            problems.append(f"--resume: no checkpoint in {self.output}/checkpoint")
        if problems:
            raise InputError("; ".join(problems))


def build_lora_config(args: ClassifierArgs):
    """LoraConfig for the flags, or None for full fine-tuning."""
    if args.full_finetune:
        return None
    from peft import LoraConfig, TaskType

    targets = args.target_modules if args.target_modules == "all-linear" else [m.strip() for m in args.target_modules.split(",")]
    return LoraConfig(task_type=TaskType.SEQ_CLS, r=args.lora_r, lora_alpha=args.lora_alpha,
                      lora_dropout=args.lora_dropout, target_modules=targets)


HEAD_MODULES = ["classifier", "score", "pre_classifier"]


def build_bnb_config(args: ClassifierArgs):
    """BitsAndBytesConfig for --qlora / --bits, or None. The head stays full precision."""
    if not args.bits:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    # llm_int8_skip_modules replaces the default list, so it names the heads explicitly.
    if args.bits == 4:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=torch.float32, llm_int8_skip_modules=HEAD_MODULES)
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=HEAD_MODULES)


def distillation_loss(student_logits, teacher_probs, temperature: float):
    """Per row: T^2 * KL(teacher_T || student_T), where teacher_T = softmax(log p_teacher / T)
    (the teacher's logits up to a constant) and student_T = softmax(logits / T)."""
    import torch

    log_t = torch.log_softmax(torch.log(teacher_probs.clamp_min(1e-8)) / temperature, dim=-1)
    log_s = torch.log_softmax(student_logits / temperature, dim=-1)
    return temperature**2 * (log_t.exp() * (log_t - log_s)).sum(dim=-1)


def combined_loss(logits, targets, teacher_probs, *, alpha: float, temperature: float, weight=None):
    """Mean over the batch of (1 - alpha) * CE(gold) + alpha * distillation on labelled rows
    (target >= 0) and the distillation term alone on unlabelled rows (target -1)."""
    import torch

    ce = torch.nn.functional.cross_entropy(logits, targets.clamp_min(0), weight=weight, reduction="none")
    kd = distillation_loss(logits, teacher_probs, temperature)
    return torch.where(targets >= 0, (1 - alpha) * ce + alpha * kd, kd).mean()


def teacher_soft_labels(args: ClassifierArgs, texts: list[str], labels: list[str], cache_dir: Path, out: Path,
                        autocast):
    """The teacher's probabilities over our `labels` for each text, shape (len(texts), len(labels)).

    Labels are matched by name (sentiment aliases normalised); a teacher with more labels is
    renormalised over ours. Kept in <output>/teacher_probs.npz, so --resume does not label again."""
    import hashlib

    import numpy as np
    from tqdm.auto import tqdm

    from bot.classifier import TextClassifier
    from bot.sentiment import normalise_label

    key = hashlib.sha256("\0".join([args.teacher, *labels, "", *texts]).encode()).hexdigest()
    cache = out / "teacher_probs.npz"
    if cache.is_file():
        with np.load(cache) as saved:
            if str(saved["key"]) == key:
                log.info("teacher soft labels from %s", cache)
                return saved["probs"]
    teacher = TextClassifier.load(args.teacher, cache_dir, batch_size=args.batch_size * 2)
    teacher_labels = [normalise_label(l) for l in teacher.labels]
    missing = [l for l in labels if normalise_label(l) not in teacher_labels]
    if missing:
        raise InputError(f"--teacher {args.teacher} has labels {teacher.labels}, not {missing}: it cannot teach them")
    columns = [teacher_labels.index(normalise_label(l)) for l in labels]
    unique = sorted(set(texts))
    probs = np.zeros((len(unique), len(labels)), dtype=np.float32)
    chunk = 256
    t0 = time.monotonic()
    with autocast():
        for start in tqdm(range(0, len(unique), chunk), desc=f"teacher {teacher.name}", unit="chunk", file=sys.stderr):
            probs[start : start + chunk] = teacher.predict_proba(unique[start : start + chunk])[:, columns]
    log.info("teacher %s labelled %d texts in %.0f s", teacher.name, len(unique), time.monotonic() - t0)
    probs /= np.clip(probs.sum(axis=1, keepdims=True), 1e-9, None)
    row = {t: i for i, t in enumerate(unique)}
    result = probs[[row[t] for t in texts]]
    del teacher
    tmp = out / "teacher_probs.tmp.npz"
    np.savez(tmp, key=np.array(key), probs=result)
    tmp.replace(cache)
    return result


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


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(ClassifierArgs, argv)
    args.validate()
    return run(args)


def run(args: ClassifierArgs) -> dict:
    # ---- setup -------------------------------------------------------------------
    import numpy as np
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from bot.classifier import load_base_classifier, predict_proba
    from core.config import settings_with
    from core.model_refs import resolve
    from finetune.classification_metrics import classification_report
    from finetune.run_record import RunRecorder

    settings = settings_with(database_url=args.database_url)
    if args.threads:
        torch.set_num_threads(args.threads)
    set_seed(args.seed)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out / "checkpoint"
    accelerator = Accelerator(gradient_accumulation_steps=args.grad_accum)

    sources = [datalib.Source.parse(s) for s in args.train]
    train_rows = datalib.mix(sources, args.seed)
    if args.eval:
        eval_rows = datalib.read_examples(args.eval)
        eval_texts = {e.text for e in eval_rows}
        train_rows = [e for e in train_rows if e.text not in eval_texts]
    else:
        train_rows, eval_rows = datalib.split(train_rows, args.eval_fraction, args.seed)
    if args.init_from:  # the adapter's head fixes the label order
        labels = read_meta(args.init_from, require=("labels",))["labels"]
    elif args.labels:
        labels = [s.strip() for s in args.labels.split(",")]
    else:
        labels = sorted({e.label for e in train_rows})
    unknown = sorted({e.label for e in train_rows + eval_rows} - set(labels))
    if unknown:
        raise InputError(f"labels {unknown} occur in the data but not in --labels {labels}")
    if len(labels) < 2:
        raise InputError(f"need at least two labels, the data has {labels}")
    unlabelled_sources = [datalib.Source.parse(s) for s in args.unlabelled]
    eval_texts_all = {e.text for e in eval_rows}
    unlabelled = [t for t in datalib.mix_texts(unlabelled_sources, args.seed) if t not in eval_texts_all]
    if args.max_eval_samples and len(eval_rows) > args.max_eval_samples:
        eval_rows = random.Random(args.seed).sample(eval_rows, args.max_eval_samples)
    label_id = {label: i for i, label in enumerate(labels)}
    counts = Counter(e.label for e in train_rows)
    log.info("train %d rows %s, eval %d rows", len(train_rows), dict(counts), len(eval_rows))

    def autocast():
        return torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=args.bf16 == "on")

    soft = None
    if args.teacher:  # labelled first, so the student's memory is not taken yet
        if accelerator.is_main_process:
            teacher_soft_labels(args, [e.text for e in train_rows] + unlabelled, labels, settings.model_cache_dir,
                                out, autocast)
        accelerator.wait_for_everyone()
        soft = teacher_soft_labels(args, [e.text for e in train_rows] + unlabelled, labels,
                                   settings.model_cache_dir, out, autocast)  # the cache, on every process
        log.info("distilling from %s: %d labelled + %d unlabelled texts, alpha %.2f, T %.1f", args.teacher,
                 len(train_rows), len(unlabelled), args.distill_alpha, args.temperature)

    base = resolve(args.base, settings.model_cache_dir)
    if base.adapter:
        raise InputError(f"--base {args.base!r} is an adapter; give its base model (see its supportbot.json)")
    tokenizer, model = load_base_classifier(base, labels, quantization_config=build_bnb_config(args))
    if args.bits:  # LoRA on top (validate refuses --full-finetune with --bits)
        from peft import prepare_model_for_kbit_training

        # The weights left in full precision still point into the mapped file, which keeps every
        # page read while quantizing resident: copy them out so the file is let go.
        log.info("copied %.0f MiB of unquantized weights off the mapped weights file", copy_mapped_weights(model) / 2**20)
        # Checkpointing is enabled below, the same way for every base.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        keep_4bit_weights_trainable_on_cpu(model)
    if args.gradient_checkpointing == "on":
        enable_gradient_checkpointing(model)
    lora_config = build_lora_config(args)
    if lora_config is not None:
        from peft import PeftModel, get_peft_model

        if args.init_from:
            model = PeftModel.from_pretrained(model, args.init_from, is_trainable=True)
            lora_config = model.peft_config["default"]
        else:
            model = get_peft_model(model, lora_config)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    n_trainable = sum(p.numel() for n, p in model.named_parameters() if n in trainable)
    n_total = sum(p.numel() for p in model.parameters())
    log.info("trainable parameters: %d of %d (%.2f%%)", n_trainable, n_total, 100 * n_trainable / n_total)

    encoded = tokenizer([e.text for e in train_rows] + unlabelled, truncation=True, max_length=args.max_length)["input_ids"]
    targets = [label_id[e.label] for e in train_rows] + [-1] * len(unlabelled)  # -1: the teacher's label only
    steps_per_epoch = math.ceil(len(encoded) / (args.batch_size * args.grad_accum * accelerator.num_processes))
    total_steps = args.max_steps or math.ceil(steps_per_epoch * args.epochs)
    n_epochs = math.ceil(total_steps / steps_per_epoch)

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=args.learning_rate, weight_decay=args.weight_decay)
    warmup = int(total_steps * args.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / max(1, warmup), max(0.0, (total_steps - s) / max(1, total_steps - warmup))))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    weight = None
    if args.class_weights:
        weight = torch.tensor([len(targets) / (len(labels) * max(1, counts[l])) for l in labels],
                              dtype=torch.float32, device=accelerator.device)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)

    state = {"epoch": 0, "batch_in_epoch": 0, "step": 0, "best": None, "best_step": None,
             "bad_evals": 0, "history": [], "elapsed_s": 0.0}
    if args.resume:
        state = load_checkpoint(ckpt_dir, accelerator.unwrap_model(model), optimizer, scheduler)
        log.info("resuming at step %d (epoch %d, batch %d)", state["step"], state["epoch"], state["batch_in_epoch"])

    data_files = [{"path": str(s.path), "weight": s.weight, "sha256": datalib.sha256_file(s.path)}
                  for s in sources]
    data_files += [{"path": str(s.path), "weight": s.weight, "sha256": datalib.sha256_file(s.path), "unlabelled": True}
                   for s in unlabelled_sources]
    recorder = RunRecorder.start(settings if args.record else None, task=args.task, kind="classifier",
                                 config=asdict(args), data=data_files, output_dir=str(out), resume=args.resume)
    with recorder:  # a run that raises is recorded as failed

        def evaluate(*, fp32: bool = False) -> dict:
            # fp32 for the saved report: the model is served in fp32
            with autocast() if not fp32 else contextlib.nullcontext():
                proba = predict_proba(accelerator.unwrap_model(model), tokenizer, [e.text for e in eval_rows],
                                      batch_size=args.batch_size * 2, max_length=args.max_length)
            y_true = [e.label for e in eval_rows]
            report = classification_report(y_true, [labels[i] for i in proba.argmax(1)], labels)
            idx = np.array([label_id[y] for y in y_true])
            report["eval_loss"] = float(-np.log(np.clip(proba[np.arange(len(idx)), idx], 1e-9, 1)).mean())
            return report

        # ---- train -------------------------------------------------------------------
        model.train()
        bar = tqdm(total=total_steps, initial=state["step"], desc=f"finetune {args.task}", unit="step",
                   disable=not accelerator.is_local_main_process, dynamic_ncols=True, file=sys.stderr)
        stop, seen, t0 = state["step"] >= total_steps, 0, time.monotonic()  # resumed with no steps left: train nothing
        best_dir = out / "best"
        for epoch in range(state["epoch"], n_epochs if not stop else 0):
            batches = length_grouped_batches([len(x) for x in encoded], args.batch_size, args.seed + epoch)
            # Under `accelerate launch`, each process takes its share of the batches (DDP).
            batches = batches[accelerator.process_index :: accelerator.num_processes]
            start_batch = state["batch_in_epoch"] if epoch == state["epoch"] else 0
            for b, idx in enumerate(batches[start_batch:], start=start_batch):
                batch = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt").to(accelerator.device)
                y = torch.tensor([targets[i] for i in idx], device=accelerator.device)
                with accelerator.accumulate(model):
                    with autocast():
                        logits = model(**batch).logits.float()
                    if soft is None:
                        loss = loss_fn(logits, y)
                    else:
                        loss = combined_loss(logits, y, torch.from_numpy(soft[idx]).to(accelerator.device),
                                             alpha=args.distill_alpha, temperature=args.temperature, weight=weight)
                    accelerator.backward(loss)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                seen += len(idx)
                if not accelerator.sync_gradients:
                    continue
                state["step"] += 1
                state["epoch"], state["batch_in_epoch"] = epoch, b + 1
                rate = seen / (time.monotonic() - t0)
                state["history"].append({"step": state["step"], "loss": loss.item(), "lr": scheduler.get_last_lr()[0]})
                bar.set_postfix(loss=f"{loss.item():.4f}", samples_s=f"{rate:.1f}", epoch=epoch + 1)
                bar.update(1)
                recorder.progress(state["step"] / total_steps)
                end_of_epoch = b + 1 == len(batches)
                if end_of_epoch or (args.eval_steps and state["step"] % args.eval_steps == 0) or state["step"] >= total_steps:
                    report = evaluate()
                    score = report[args.metric]
                    state["history"][-1].update(eval_loss=report["eval_loss"], **{f"eval_{args.metric}": score})
                    tqdm.write(f"step {state['step']}: eval {args.metric} {score:.4f} accuracy {report['accuracy']:.4f} "
                               f"loss {report['eval_loss']:.4f}", file=sys.stderr)
                    if state["best"] is None or score > state["best"]:
                        state.update(best=score, best_step=state["step"], bad_evals=0)
                        save_trainable(accelerator.unwrap_model(model), best_dir)
                    else:
                        state["bad_evals"] += 1
                        if state["bad_evals"] >= args.patience:
                            tqdm.write(f"early stopping: no improvement in {args.patience} evaluations", file=sys.stderr)
                            stop = True
                    model.train()
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
        if best_dir.is_dir():
            load_trainable(unwrapped, best_dir)
        report = evaluate(fp32=True)
        report.update(best_step=state["best_step"], steps=state["step"], train_rows=len(train_rows),
                      eval_rows=len(eval_rows), train_seconds=round(state["elapsed_s"], 1))

        # ---- save ----------------------------------------------------------------------
        if not accelerator.is_main_process:
            return report
        version = args.version or f"{args.task}-{time.strftime('%Y%m%d-%H%M%S')}"
        meta = {
            "format": 1, "kind": "classifier", "task": args.task, "version": version, "base": args.base,
            "labels": labels, "max_length": args.max_length, "lora": lora_config is not None,
            "quantization": {4: "nf4", 8: "int8"}.get(args.bits), "data": data_files,
            "eval_file": args.eval, "init_from": args.init_from, "teacher": args.teacher,
            "hyperparameters": asdict(args),
            "metrics": {k: report[k] for k in ("accuracy", "macro_f1", "macro_recall", "eval_loss", "n")},
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        if lora_config is not None:
            unwrapped.save_pretrained(out)
            rewrite_base_reference(out, args.base)
        else:
            unwrapped.save_pretrained(out)
            tokenizer.save_pretrained(out)
            meta["base"] = str(out.resolve())  # a full model is its own base
        write_meta(out, meta)
        (out / "eval_report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
        (out / "train_log.jsonl").write_text("\n".join(json.dumps(h) for h in state["history"]) + "\n")
        from finetune import plots
        from finetune.model_card import write_model_card

        plots.loss_curve(state["history"], out / "loss.png")
        plots.confusion_matrix(report, out / "confusion.png", f"{version}: accuracy {report['accuracy']:.3f}")
        write_model_card(out, meta, report)
        shutil.rmtree(best_dir, ignore_errors=True)
        (out / "teacher_probs.npz").unlink(missing_ok=True)  # a cache for --resume, not part of the adapter
        recorder.finish(metrics=meta["metrics"], version=version, base=args.base, path=str(out.resolve()))
        print(f"saved {out} | accuracy {report['accuracy']:.4f} | macro-F1 {report['macro_f1']:.4f}", file=sys.stderr)
        return report


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
