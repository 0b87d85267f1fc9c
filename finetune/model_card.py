"""The model card (README.md) written next to every adapter."""

from __future__ import annotations

import json
from pathlib import Path


def write_model_card(out: Path, meta: dict, report: dict) -> None:
    hp = meta["hyperparameters"]
    rows = "\n".join(
        f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
        for label, m in report["per_class"].items()
    )
    data = "\n".join(f"- `{d['path']}` ({'unlabelled, ' if d.get('unlabelled') else ''}weight {d['weight']}, "
                     f"sha256 `{d['sha256'][:16]}…`)" for d in meta["data"])
    flags = {k: v for k, v in hp.items() if k not in ("train", "database_url", "record")}
    text = f"""# {meta['version']}

Task **{meta['task']}**, labels {', '.join(meta['labels'])}.
Base model `{meta['base']}`, {'LoRA adapter + head' if meta['lora'] else 'full fine-tune'}{
    f", base quantized to {meta['quantization']} while training (QLoRA)" if meta.get('quantization') else ''}.
Made by supportbot's `finetune/classifier_recipe.py` on {meta['created_at']}{
    f", continuing the adapter `{meta['init_from']}`" if meta.get('init_from') else ''}{
    f", distilled from `{meta['teacher']}` (alpha {hp.get('distill_alpha')}, temperature {hp.get('temperature')})"
    if meta.get('teacher') else ''}.

## Data
{data}

Evaluation: {f"`{meta['eval_file']}`" if meta.get('eval_file') else f"{hp['eval_fraction']:.0%} held out from the training data"} ({report['n']} rows).

## Metrics (best checkpoint, step {report.get('best_step')})
accuracy **{report['accuracy']:.4f}**, macro-F1 **{report['macro_f1']:.4f}**, macro-recall {report['macro_recall']:.4f}

| label | precision | recall | F1 | support |
|---|---|---|---|---|
{rows}

![loss](loss.png) ![confusion](confusion.png)

## Hyper-parameters
```json
{json.dumps(flags, indent=2)}
```
"""
    (out / "README.md").write_text(text, encoding="utf-8")
