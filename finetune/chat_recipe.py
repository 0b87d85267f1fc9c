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
What this recipe does the same way as the other one (flags, accumulation, evaluation
cadence and early stopping, checkpoints, run record, supportbot.json) is finetune/training.py.
"""

from __future__ import annotations

import logging
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import InputError
from finetune import chat_data
from finetune import data as datalib
from finetune import training
from finetune.args import parse_and_validate
from finetune.chat_data import DEFAULT_MAX_LENGTH
from finetune.chat_model import load_base_lm, load_tokenizer
from finetune.checkpoint import rewrite_base_reference
from finetune.training import Evaluation

log = logging.getLogger("supportbot.finetune")


@dataclass
class ChatArgs(training.TrainingFlags):
    """The flags of `supportbot finetune chat`: these and the shared TrainingFlags."""

    train: list[str] = field(default_factory=list, metadata={"help": "chat JSONL file(s), FILE[@WEIGHT]"})
    eval: str | None = field(default=None, metadata={"help": "eval chat JSONL; default: hold out --eval-fraction of train"})
    base: str = field(default="smollm2-135m", metadata={"help": "base causal LM: packaged name, directory or hub id"})
    output: str = field(default="runs/chat", metadata={"help": "output directory (adapter, report, checkpoints)"})
    epochs: float = field(default=2.0, metadata={"help": "passes over the training data (fractions allowed)"})
    max_train_samples: int = field(default=0, metadata={"help": "train on a random subset of this many conversations (0: all)"})
    batch_size: int = field(default=8, metadata={"help": "conversations per micro-batch (per device)"})
    # 2e-4 is the QLoRA paper's rate for models up to 13B (Dettmers et al. 2023, Table 9).
    learning_rate: float = field(default=2e-4, metadata={"help": "peak learning rate (linear warm-up then decay)"})
    warmup_ratio: float = field(default=0.03, metadata={"help": "fraction of steps spent warming up"})
    max_length: int = field(default=DEFAULT_MAX_LENGTH, metadata={"help": "tokens per conversation; longer ones are cut at the end"})
    # --lora-r 16 on every linear projection: QLoRA found all-layer LoRA matters more than the rank.
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA path"})
    lora_target: str = field(default="all-linear", metadata={"help": "modules that get LoRA: all-linear (every projection, not lm_head) or comma-separated names"})
    init_from: str | None = field(default=None, metadata={"help": "continue training this chat adapter directory (same base)"})
    chat_template: str | None = field(default=None, metadata={"help": "jinja chat template file, for a base whose tokenizer has none"})
    eval_fraction: float = field(default=0.05, metadata={"help": "held-out share when no --eval file is given"})
    max_eval_samples: int = field(default=0, metadata={"help": "evaluate on a random subset of this many conversations (0: all)"})
    patience: int = field(default=3, metadata={"help": "early stopping: evaluations without a lower eval loss"})
    seed: int = field(default=42, metadata={"help": "random seed (data order, subsets, init, dropout)"})
    version: str | None = field(default=None, metadata={"help": "version name recorded in the adapter; default: the output directory's name"})

    def validate(self) -> None:
        """Report every problem at once, before any weights load."""
        problems = training.data_problems(self)
        if self.init_from:
            problems += training.init_from_problems(self.init_from, self.base, task="chat")
        if self.chat_template and not Path(self.chat_template).is_file():
            problems.append(f"--chat-template {self.chat_template}: no such file")
        problems += training.quantization_problems(self) + training.schedule_problems(self)
        if self.max_steps < 0 or self.max_train_samples < 0 or self.max_eval_samples < 0 or self.eval_steps < 0:
            problems.append("--max-steps, --max-train-samples, --max-eval-samples and --eval-steps must be >= 0")
        if self.max_length < 16:
            problems.append("--max-length must be at least 16 tokens")
        if self.lora_r < 1 or not 0 <= self.lora_dropout < 1:
            problems.append("--lora-r must be >= 1 and --lora-dropout in [0, 1)")
        if self.patience < 1 or self.save_steps < 1:
            problems.append("--patience and --save-steps must be >= 1")
        problems += training.resume_problems(self)
        if problems:
            raise InputError("; ".join(problems))


def build_lora_config(args: ChatArgs):
    return training.lora_config(args, "CAUSAL_LM", args.lora_target)


def build_bnb_config(args: ChatArgs):
    """BitsAndBytesConfig for --qlora / --bits, or None. lm_head (tied to the embeddings) stays full precision."""
    return training.bnb_config(args.bits, ["lm_head"])


def main(argv: list[str] | None = None) -> dict:
    return run(parse_and_validate(ChatArgs, argv))


def run(args: ChatArgs) -> dict:
    # ---- setup -------------------------------------------------------------------
    from core.model_refs import resolve
    from finetune.perplexity import perplexity

    settings, out, accelerator = training.start(args)
    sources, source_rows, train_rows, eval_rows = read_data(args)
    base = resolve(args.base, settings.model_cache_dir)
    if base.adapter:
        raise InputError(f"--base {args.base!r} is an adapter; give its base model (see its supportbot.json), "
                         "or continue it with --init-from")
    chat_template = Path(args.chat_template).read_text(encoding="utf-8") if args.chat_template else None
    tokenizer = load_tokenizer(base, chat_template)
    train_enc, eval_enc, dropped = encode(args, tokenizer, train_rows, eval_rows)
    pad_id = tokenizer.pad_token_id
    out.mkdir(parents=True, exist_ok=True)  # the data is good: from here on the run leaves files

    def evaluate(m) -> dict:
        return perplexity(m, chat_data.eval_batches(eval_enc, args.batch_size, pad_id))

    model = load_model(args, base, accelerator)
    base_report = base_perplexity(args, out, model, evaluate)
    model, lora = training.prepare_for_training(model, args, build_lora_config(args))
    schedule = training.plan_steps([len(ids) for ids, _ in train_enc], args, accelerator.num_processes)
    optimizer, scheduler = training.optimizer_and_scheduler(model, args, schedule.total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    state = training.start_state(args, out, accelerator.unwrap_model(model), optimizer, scheduler,
                                 base_report=base_report)
    data_files = [training.data_file(s, rows=len(rows)) for s, rows in zip(sources, source_rows)]

    def micro_loss(idx: list[int]):
        batch = chat_data.collate([train_enc[i] for i in idx], pad_id)
        return model(**{k: v.to(accelerator.device) for k, v in batch.items()}).loss  # mean over its assistant tokens

    def evaluation() -> Evaluation:
        report = evaluate(accelerator.unwrap_model(model))
        return Evaluation(report["eval_loss"], {"eval_loss": report["eval_loss"], "eval_perplexity": report["perplexity"]},
                          f"step {state['step']}: eval loss {report['eval_loss']:.4f} perplexity "
                          f"{report['perplexity']:.2f} (base {base_report['perplexity']:.2f})", report)

    with training.record_run(settings, args, task="chat", kind="chat", data=data_files, out=out) as recorder:
        # ---- train -------------------------------------------------------------------
        loop = training.Loop(accelerator, model, optimizer, scheduler, micro_loss, evaluation,
                             higher_is_better=False, stale="no lower eval loss", desc="finetune chat")
        last_eval = training.train(loop, state, schedule, args, out, recorder)

        # ---- evaluate (the best weights) -----------------------------------------------
        unwrapped = accelerator.unwrap_model(model)
        if last_eval and last_eval[0] == state["best_step"] == state["step"]:
            report = dict(last_eval[1].report)  # the weights in memory are the best: evaluated just now
        else:
            training.restore_best(unwrapped, out)
            report = evaluate(unwrapped)
        report.update(base_eval_loss=base_report["eval_loss"], base_perplexity=base_report["perplexity"],
                      n_eval=len(eval_enc), best_step=state["best_step"], steps=state["step"],
                      train_rows=len(train_enc), dropped_train=dropped[0], dropped_eval=dropped[1],
                      train_seconds=round(state["elapsed_s"], 1))

        # ---- save (the first process; the others have read the best weights it deletes) --
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            save(args, out, unwrapped, tokenizer, lora, data_files, report, state["history"], recorder)
        return report


def read_data(args: ChatArgs):
    """(sources, their rows, train conversations, eval conversations): --train mixed by
    weight, without the conversations of --eval (or with --eval-fraction held out)."""
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
    if args.max_train_samples and len(train_rows) > args.max_train_samples:
        train_rows = random.Random(args.seed).sample(train_rows, args.max_train_samples)
    if args.max_eval_samples and len(eval_rows) > args.max_eval_samples:
        eval_rows = random.Random(args.seed).sample(eval_rows, args.max_eval_samples)
    return sources, source_rows, train_rows, eval_rows


def encode(args: ChatArgs, tokenizer, train_rows, eval_rows):
    """(train, eval, (dropped train, dropped eval)): token ids and assistant-only labels,
    without the conversations that have no assistant token within --max-length."""
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
    return train_enc, eval_enc, (dropped_train, dropped_eval)


def load_model(args: ChatArgs, base, accelerator):
    """The base causal LM on the training device; quantized while loading with --bits
    (bitsandbytes models refuse .to()) and made ready for LoRA on top."""
    model = load_base_lm(base, quantization_config=build_bnb_config(args),
                         device_map={"": str(accelerator.device)} if args.bits else None)
    if args.bits:
        return training.prepare_quantized(model)
    return model.to(accelerator.device)


def base_perplexity(args: ChatArgs, out: Path, model, evaluate) -> dict:
    """The base model's eval loss and perplexity, without adapter: once per run (a resumed
    run reads it from its checkpoint)."""
    import json

    saved = json.loads((out / training.CHECKPOINT / "state.json").read_text()) if args.resume else {}
    report = saved.get("base_report") or evaluate(model)
    log.info("base model: eval loss %.4f, perplexity %.2f", report["eval_loss"], report["perplexity"])
    return report


def save(args: ChatArgs, out: Path, model, tokenizer, lora, data_files, report, history, recorder) -> None:
    """Adapter + tokenizer (with its chat template), supportbot.json, eval report, train
    log, loss plot and model card; then the run is recorded as finished."""
    from finetune.model_card import write_chat_card

    targets = (args.lora_target if not args.init_from else lora.target_modules
               if isinstance(lora.target_modules, str) else sorted(lora.target_modules))
    meta = training.adapter_meta(
        args, kind="chat", task="chat", version=args.version or out.resolve().name, data=data_files,
        metrics={k: report[k] for k in ("eval_loss", "perplexity", "base_perplexity", "n_eval")},
        lora={"r": lora.r, "alpha": lora.lora_alpha, "dropout": lora.lora_dropout, "target_modules": targets})
    model.save_pretrained(out)
    rewrite_base_reference(out, args.base)
    tokenizer.save_pretrained(out)
    training.write_run_files(out, meta, report, history)
    write_chat_card(out, meta, report)
    training.finish_run(out, recorder, meta, args.base)
    print(f"saved {out} | eval loss {report['eval_loss']:.4f} | perplexity {report['perplexity']:.2f} "
          f"(base {report['base_perplexity']:.2f})", file=sys.stderr)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
