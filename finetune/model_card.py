"""The model card (README.md) written next to every adapter: one per recipe, sharing the
lines both say the same way (quantization, provenance, evaluation data, hyper-parameters)."""

from __future__ import annotations

import json
from pathlib import Path


def write_classifier_card(out: Path, meta: dict, report: dict) -> None:
    hp = meta["hyperparameters"]
    rows = "\n".join(
        f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
        for label, m in report["per_class"].items()
    )
    data = "\n".join(f"- `{d['path']}` ({'unlabelled, ' if d.get('unlabelled') else ''}weight {d['weight']}, "
                     f"sha256 `{d['sha256'][:16]}…`)" for d in meta["data"])
    distilled = (f", distilled from `{meta['teacher']}` (alpha {hp.get('distill_alpha')}, temperature "
                 f"{hp.get('temperature')})" if meta.get('teacher') else '')
    text = f"""# {meta['version']}

Task **{meta['task']}**, labels {', '.join(meta['labels'])}.
Base model `{meta['base']}`, {'LoRA adapter + head' if meta['lora'] else 'full fine-tune'}{_quantized(meta)}.
{_made_by(meta, "finetune/classifier_recipe.py")}{distilled}.

## Data
{data}

Evaluation: {_evaluated_on(meta)} ({report['n']} rows).

## Metrics (best checkpoint, step {report.get('best_step')})
accuracy **{report['accuracy']:.4f}**, macro-F1 **{report['macro_f1']:.4f}**, macro-recall {report['macro_recall']:.4f}

| label | precision | recall | F1 | support |
|---|---|---|---|---|
{rows}

![loss](loss.png) ![confusion](confusion.png)

{_hyperparameters(meta)}"""
    (out / "README.md").write_text(text, encoding="utf-8")


def write_chat_card(out: Path, meta: dict, report: dict) -> None:
    data = "\n".join(f"- `{d['path']}`: {d['rows']} conversations, weight {d['weight']}, sha256 `{d['sha256']}`"
                     for d in meta["data"])
    text = f"""# {meta['version']}

Chat model: a LoRA adapter (rank {meta['lora']['r']}, alpha {meta['lora']['alpha']}) on `{meta['base']}`{_quantized(meta)}.
{_made_by(meta, "finetune/chat_recipe.py")}.
Loss on assistant turns only; conversations cut to {meta['max_length']} tokens.
Serve it as is, or merge it into a plain model directory: `supportbot finetune merge THIS_DIR --output DIR`.

## Data
{data}

Evaluation: {_evaluated_on(meta)} ({report['n_eval']} conversations, {report['eval_tokens']} assistant tokens).

## Metrics (best checkpoint, step {report.get('best_step')} of {report['steps']})
| model | eval loss | perplexity |
|---|---|---|
| base `{meta['base']}` | {report['base_eval_loss']:.4f} | {report['base_perplexity']:.2f} |
| this adapter | {report['eval_loss']:.4f} | **{report['perplexity']:.2f}** |

![loss](loss.png)

{_hyperparameters(meta)}"""
    (out / "README.md").write_text(text, encoding="utf-8")


def _quantized(meta: dict) -> str:
    return f", base quantized to {meta['quantization']} while training (QLoRA)" if meta.get("quantization") else ""


def _made_by(meta: dict, recipe: str) -> str:
    continued = f", continuing the adapter `{meta['init_from']}`" if meta.get("init_from") else ""
    return f"Made by supportbot's `{recipe}` on {meta['created_at']}{continued}"


def _evaluated_on(meta: dict) -> str:
    if meta.get("eval_file"):
        return f"`{meta['eval_file']}`"
    return f"{meta['hyperparameters']['eval_fraction']:.0%} held out from the training data"


def _hyperparameters(meta: dict) -> str:
    flags = {k: v for k, v in meta["hyperparameters"].items() if k not in ("train", "database_url", "record")}
    return f"## Hyper-parameters\n```json\n{json.dumps(flags, indent=2)}\n```\n"
