"""Copy a trained adapter into bot/shipped/NAME as a default model of the product.

    python scripts/ship_adapter.py runs/sentiment-zh sentiment-zh [--fp16] \
        [--language zh] [--benchmark "ChnSentiCorp test=runs/eval-chnsenticorp.json" ...]

Copies the adapter, head, label map, model card, eval report and plots (not the
checkpoints). --fp16 stores the adapter weights in half precision to keep the repository
small; they are cast back to fp32 on load.

For other tools (issue 19): adapter_config.json names the base by its hub id
(core.model_refs.PACKAGED_HUB_IDS), a classifier gets a config.json (the base's config with
id2label/label2id), and the model card gets YAML front matter with the held-out metrics and
those of each --benchmark (a `supportbot eval classifier --json` report).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.adapter_artifact import load_meta, write_meta  # noqa: E402 - after the path line

FILES = ["adapter_config.json", "adapter_model.safetensors", "supportbot.json", "README.md",
         "eval_report.json", "loss.png", "confusion.png", "train_log.jsonl",
         # chat adapters carry their tokenizer and chat template
         "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("name")
    ap.add_argument("--fp16", action="store_true")
    ap.add_argument("--language", action="append", help="language(s) of the model card (default: en)")
    ap.add_argument("--benchmark", action="append", default=[], help="NAME=REPORT.json, a supportbot eval classifier --json report")
    a = ap.parse_args()
    dest = ROOT / "bot" / "shipped" / a.name
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for f in FILES:
        if (a.run / f).exists():
            shutil.copy2(a.run / f, dest / f)
    meta = load_meta(dest)
    if "data" in meta:
        meta["data"] = [{**d, "path": Path(d["path"]).name} for d in meta["data"]]  # no local paths
    if a.fp16:
        import torch
        from safetensors.torch import load_file, save_file

        weights = load_file(str(dest / "adapter_model.safetensors"))
        save_file({k: v.to(torch.float16) for k, v in weights.items()}, str(dest / "adapter_model.safetensors"))
        meta["stored_dtype"] = "float16"
    write_meta(dest, meta)
    hub_metadata(dest, meta, a.language or ["en"], [b.split("=", 1) for b in a.benchmark])
    size = sum(p.stat().st_size for p in dest.iterdir())
    print(f"shipped {a.run} as {dest} ({size / 1e6:.1f} MB)")


def hub_metadata(dest: Path, meta: dict, languages: list[str], benchmarks: list[list[str]]) -> None:
    """Hub id of the base in adapter_config.json, config.json with the labels, card front matter."""
    import yaml

    from core.model_refs import PACKAGED, PACKAGED_HUB_IDS

    hub_id = {v: k for k, v in PACKAGED_HUB_IDS.items()}[meta["base"]]
    cfg_path = dest / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = hub_id
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    if meta["task"] != "chat":
        from transformers import AutoConfig

        from core.config import settings_with
        from core.model_refs import resolve

        base = resolve(meta["base"], settings_with().model_cache_dir)
        config = AutoConfig.from_pretrained(base.path, local_files_only=True)
        config.id2label = dict(enumerate(meta["labels"]))
        config.label2id = {label: i for i, label in enumerate(meta["labels"])}
        config.architectures = [config.architectures[0].replace("Model", "ForSequenceClassification")
                                if config.architectures else "BertForSequenceClassification"]
        config.save_pretrained(dest)

    def metrics(report: dict) -> list[dict]:
        return [{"type": "accuracy", "value": round(report["accuracy"], 4), "name": "accuracy"},
                {"type": "f1", "value": round(report["macro_f1"], 4), "name": "macro-F1", "args": {"average": "macro"}},
                {"type": "recall", "value": round(report["macro_recall"], 4), "name": "macro-recall",
                 "args": {"average": "macro"}}]

    report = json.loads((dest / "eval_report.json").read_text())
    train_file = Path(meta["data"][0]["path"]).name if meta.get("data") else "the training data"
    task = {"type": "text-classification", "name": meta["task"].capitalize()}
    results = [{"task": dict(task), "dataset": {"type": "supportbot-heldout", "name": f"10% held out from {train_file} "
                                          f"({report['n']} rows)" if not meta.get("eval_file") else Path(meta["eval_file"]).name},
                "metrics": metrics(report)}]
    for name, path in benchmarks:
        bench = json.loads(Path(path).read_text())
        results.append({"task": dict(task), "dataset": {"type": "benchmark", "name": f"{name} ({bench['n']} rows)"},
                        "metrics": metrics(bench)})
    front = {"base_model": hub_id, "library_name": "peft", "license": "gemma" if "gemma" in meta["base"] else "apache-2.0",
             "language": languages, "pipeline_tag": "text-generation" if meta["task"] == "chat" else "text-classification",
             "tags": ["lora", "peft", "supportbot", "customer-service", meta["task"]],
             "model-index": [{"name": meta["version"], "results": results}]}
    note = (f"> Base: `{hub_id}` as packaged for supportbot (`{meta['base']}`, {PACKAGED[meta['base']].package}): "
            "supportbot's resolver maps the hub id to that copy offline. Labels: `config.json` (`id2label`/`label2id`) "
            "next to the adapter. Plain PEFT: `PeftModel.from_pretrained(base, THIS_DIR)` on "
            "`AutoModelForSequenceClassification.from_pretrained(base_dir, config=AutoConfig.from_pretrained(THIS_DIR))`.\n")
    card = (dest / "README.md").read_text(encoding="utf-8")
    if card.startswith("---\n"):
        card = card.split("\n---\n", 1)[1]
    title, _, rest = card.partition("\n")
    (dest / "README.md").write_text("---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n"
                                    + title + "\n\n" + note + rest, encoding="utf-8")


if __name__ == "__main__":
    main()
