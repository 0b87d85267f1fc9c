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
What this recipe does the same way as the other one (flags, accumulation, evaluation
cadence and early stopping, checkpoints, run record, supportbot.json) is finetune/training.py.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from core.adapter_artifact import read_meta
from core.errors import InputError
from finetune import data as datalib
from finetune import training
from finetune.args import parse_and_validate
from finetune.checkpoint import rewrite_base_reference
from finetune.training import Evaluation

log = logging.getLogger("supportbot.finetune")


@dataclass
class ClassifierArgs(training.TrainingFlags):
    """The flags of `supportbot finetune classifier`: these and the shared TrainingFlags."""

    task: str = field(default="sentiment", metadata={"help": "sentiment or intent; the label set itself comes from the data"})
    train: list[str] = field(default_factory=list, metadata={"help": "training file(s), FILE[@WEIGHT]; CSV/TSV/JSONL text,label"})
    eval: str | None = field(default=None, metadata={"help": "eval file; default: hold out --eval-fraction of train"})
    base: str = field(default="minilm-l6", metadata={"help": "base model: packaged name, directory or hub id"})
    output: str = field(default="runs/classifier", metadata={"help": "output directory (adapter, report, checkpoints)"})
    labels: str | None = field(default=None, metadata={"help": "comma-separated label order; default: sorted labels of the data"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the training data (fractions allowed)"})
    batch_size: int = field(default=32, metadata={"help": "examples per optimizer step (per device)"})
    # 2e-4..1e-3 is the usual LoRA range; the head is trained from scratch at the same rate.
    learning_rate: float = field(default=5e-4, metadata={"help": "peak learning rate (linear warm-up then decay)"})
    warmup_ratio: float = field(default=0.06, metadata={"help": "fraction of steps spent warming up"})
    max_length: int = field(default=128, metadata={"help": "tokens per text; longer texts are truncated"})
    # --lora-r 8..16 is plenty for classification (LoRA paper, Hu et al. 2021, Table 6).
    lora_dropout: float = field(default=0.1, metadata={"help": "dropout on the LoRA path"})
    target_modules: str = field(default="all-linear", metadata={"help": "modules that get LoRA: all-linear or comma-separated names"})
    init_from: str | None = field(default=None, metadata={"help": "continue training this supportbot adapter directory (same base and labels)"})
    full_finetune: bool = field(default=False, metadata={"help": "train all weights instead of LoRA (baseline)"})
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
    patience: int = field(default=2, metadata={"help": "early stopping: evaluations without improvement"})
    metric: str = field(default="macro_f1", metadata={"help": "metric that selects the best checkpoint: macro_f1 or accuracy"})
    seed: int = field(default=42, metadata={"help": "random seed (data order, init, dropout)"})
    version: str | None = field(default=None, metadata={"help": "version name recorded in the adapter; default: task-date"})

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.unlabelled, str):
            self.unlabelled = [self.unlabelled]
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
        problems += training.data_problems(self) + training.source_problems("--unlabelled", self.unlabelled)
        if self.unlabelled and not self.teacher:
            problems.append("--unlabelled texts are labelled by a --teacher; give one")
        if not 0 <= self.distill_alpha <= 1:
            problems.append("--distill-alpha must be in [0, 1]")
        if self.temperature <= 0:
            problems.append("--temperature must be positive")
        if self.init_from:
            problems += training.init_from_problems(self.init_from, self.base)
            if self.full_finetune:
                problems.append("--init-from continues a LoRA adapter; drop --full-finetune")
        problems += training.quantization_problems(self)
        if self.full_finetune and self.bits:
            problems.append("--full-finetune cannot train quantized weights; drop --qlora/--bits")
        if self.bf16 not in ("on", "off"):
            problems.append(f"--bf16 must be on, off or auto (got {self.bf16!r})")
        if self.metric not in ("macro_f1", "accuracy"):
            problems.append("--metric must be macro_f1 or accuracy")
        problems += training.schedule_problems(self) + training.resume_problems(self)
        if problems:
            raise InputError("; ".join(problems))


def build_lora_config(args: ClassifierArgs):
    """LoraConfig for the flags, or None for full fine-tuning."""
    return None if args.full_finetune else training.lora_config(args, "SEQ_CLS", args.target_modules)


HEAD_MODULES = ["classifier", "score", "pre_classifier"]


def build_bnb_config(args: ClassifierArgs):
    """BitsAndBytesConfig for --qlora / --bits, or None. The head stays full precision."""
    return training.bnb_config(args.bits, HEAD_MODULES)


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


def main(argv: list[str] | None = None) -> dict:
    return run(parse_and_validate(ClassifierArgs, argv))


def run(args: ClassifierArgs) -> dict:
    # ---- setup -------------------------------------------------------------------
    import torch

    from bot.classifier import load_base_classifier
    from core.model_refs import resolve

    settings, out, accelerator = training.start(args)
    out.mkdir(parents=True, exist_ok=True)
    sources, unlabelled_sources, train_rows, eval_rows, unlabelled, labels = read_data(args)
    label_id = {label: i for i, label in enumerate(labels)}
    counts = Counter(e.label for e in train_rows)
    log.info("train %d rows %s, eval %d rows", len(train_rows), dict(counts), len(eval_rows))

    def autocast():
        return torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=args.bf16 == "on")

    soft = distillation_targets(args, accelerator, train_rows, unlabelled, labels, settings.model_cache_dir, out,
                                autocast)
    base = resolve(args.base, settings.model_cache_dir)
    if base.adapter:
        raise InputError(f"--base {args.base!r} is an adapter; give its base model (see its supportbot.json)")
    tokenizer, model = load_base_classifier(base, labels, quantization_config=build_bnb_config(args))
    if args.bits:  # LoRA on top (validate refuses --full-finetune with --bits)
        model = training.prepare_quantized(model)
    model, lora = training.prepare_for_training(model, args, build_lora_config(args))

    encoded = tokenizer([e.text for e in train_rows] + unlabelled, truncation=True, max_length=args.max_length)["input_ids"]
    targets = [label_id[e.label] for e in train_rows] + [-1] * len(unlabelled)  # -1: the teacher's label only
    schedule = training.plan_steps([len(x) for x in encoded], args, accelerator.num_processes)
    optimizer, scheduler = training.optimizer_and_scheduler(model, args, schedule.total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    weight = None
    if args.class_weights:
        weight = torch.tensor([len(targets) / (len(labels) * max(1, counts[l])) for l in labels],
                              dtype=torch.float32, device=accelerator.device)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    state = training.start_state(args, out, accelerator.unwrap_model(model), optimizer, scheduler)
    data_files = ([training.data_file(s) for s in sources]
                  + [training.data_file(s, unlabelled=True) for s in unlabelled_sources])

    def micro_loss(idx: list[int]):
        batch = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt").to(accelerator.device)
        y = torch.tensor([targets[i] for i in idx], device=accelerator.device)
        with autocast():
            logits = model(**batch).logits.float()
        if soft is None:
            return loss_fn(logits, y)
        return combined_loss(logits, y, torch.from_numpy(soft[idx]).to(accelerator.device),
                             alpha=args.distill_alpha, temperature=args.temperature, weight=weight)

    def evaluate(*, fp32: bool = False) -> dict:
        # fp32 for the saved report: the model is served in fp32
        with autocast() if not fp32 else contextlib.nullcontext():
            return classification_eval(accelerator.unwrap_model(model), tokenizer, eval_rows, labels, args)

    def evaluation() -> Evaluation:
        report = evaluate()
        score = report[args.metric]
        return Evaluation(score, {"eval_loss": report["eval_loss"], f"eval_{args.metric}": score},
                          f"step {state['step']}: eval {args.metric} {score:.4f} accuracy {report['accuracy']:.4f} "
                          f"loss {report['eval_loss']:.4f}", report)

    with training.record_run(settings, args, task=args.task, kind="classifier", data=data_files, out=out) as recorder:
        # ---- train -------------------------------------------------------------------
        loop = training.Loop(accelerator, model, optimizer, scheduler, micro_loss, evaluation,
                             higher_is_better=True, stale="no improvement", desc=f"finetune {args.task}")
        training.train(loop, state, schedule, args, out, recorder)

        # ---- evaluate (the best weights) -----------------------------------------------
        unwrapped = accelerator.unwrap_model(model)
        training.restore_best(unwrapped, out)
        report = evaluate(fp32=True)
        report.update(best_step=state["best_step"], steps=state["step"], train_rows=len(train_rows),
                      eval_rows=len(eval_rows), train_seconds=round(state["elapsed_s"], 1))

        # ---- save (the first process; the others have read the best weights it deletes) --
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            save(args, out, unwrapped, tokenizer, lora, labels, data_files, report, state["history"], recorder)
        return report


def read_data(args: ClassifierArgs):
    """(sources, unlabelled sources, train rows, eval rows, unlabelled texts, label order):
    --train mixed by weight, without the texts of --eval (or with --eval-fraction held out)."""
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
    return sources, unlabelled_sources, train_rows, eval_rows, unlabelled, labels


def classification_eval(model, tokenizer, eval_rows, labels: list[str], args: ClassifierArgs) -> dict:
    """Accuracy, macro-F1, per-class figures and the mean eval loss (cross-entropy) on the eval rows."""
    import numpy as np

    from bot.classifier import predict_proba
    from finetune.classification_metrics import classification_report

    proba = predict_proba(model, tokenizer, [e.text for e in eval_rows], batch_size=args.batch_size * 2,
                          max_length=args.max_length)
    y_true = [e.label for e in eval_rows]
    report = classification_report(y_true, [labels[i] for i in proba.argmax(1)], labels)
    idx = np.array([labels.index(y) for y in y_true])
    report["eval_loss"] = float(-np.log(np.clip(proba[np.arange(len(idx)), idx], 1e-9, 1)).mean())
    return report


def distillation_targets(args: ClassifierArgs, accelerator, train_rows, unlabelled: list[str], labels: list[str],
                         cache_dir: Path, out: Path, autocast):
    """The teacher's soft labels for the labelled then the unlabelled texts, or None without
    --teacher. Labelled first, so the student's memory is not taken yet; the first process
    labels, every process then reads the cache."""
    if not args.teacher:
        return None
    texts = [e.text for e in train_rows] + unlabelled
    if accelerator.is_main_process:
        teacher_soft_labels(args, texts, labels, cache_dir, out, autocast)
    accelerator.wait_for_everyone()
    soft = teacher_soft_labels(args, texts, labels, cache_dir, out, autocast)
    log.info("distilling from %s: %d labelled + %d unlabelled texts, alpha %.2f, T %.1f", args.teacher,
             len(train_rows), len(unlabelled), args.distill_alpha, args.temperature)
    return soft


def save(args: ClassifierArgs, out: Path, model, tokenizer, lora, labels, data_files, report, history,
         recorder) -> None:
    """Adapter + head (or the whole model), supportbot.json with the label map, eval report,
    train log, loss and confusion plots and model card; then the run is recorded as finished."""
    from finetune import plots
    from finetune.model_card import write_classifier_card

    meta = training.adapter_meta(
        args, kind="classifier", task=args.task, version=args.version or f"{args.task}-{time.strftime('%Y%m%d-%H%M%S')}",
        data=data_files, metrics={k: report[k] for k in ("accuracy", "macro_f1", "macro_recall", "eval_loss", "n")},
        labels=labels, lora=lora is not None, teacher=args.teacher)
    model.save_pretrained(out)
    if lora is not None:
        rewrite_base_reference(out, args.base)
    else:
        tokenizer.save_pretrained(out)
        meta["base"] = str(out.resolve())  # a full model is its own base
    training.write_run_files(out, meta, report, history)
    plots.confusion_matrix(report, out / "confusion.png", f"{meta['version']}: accuracy {report['accuracy']:.3f}")
    write_classifier_card(out, meta, report)
    (out / "teacher_probs.npz").unlink(missing_ok=True)  # a cache for --resume, not part of the adapter
    training.finish_run(out, recorder, meta, args.base)
    print(f"saved {out} | accuracy {report['accuracy']:.4f} | macro-F1 {report['macro_f1']:.4f}", file=sys.stderr)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
