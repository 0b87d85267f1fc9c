"""Copy a trained adapter into bot/shipped/NAME as a default model of the product.

    python scripts/ship_adapter.py runs/sentiment-zh sentiment-zh [--fp16]

Copies the adapter, head, label map, model card, eval report and plots (not the
checkpoints). --fp16 stores the adapter weights in half precision to keep the repository
small; they are cast back to fp32 on load.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

FILES = ["adapter_config.json", "adapter_model.safetensors", "supportbot.json", "README.md",
         "eval_report.json", "loss.png", "confusion.png", "train_log.jsonl",
         # chat adapters carry their tokenizer and chat template
         "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("name")
    ap.add_argument("--fp16", action="store_true")
    a = ap.parse_args()
    dest = Path(__file__).resolve().parents[1] / "bot" / "shipped" / a.name
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for f in FILES:
        if (a.run / f).exists():
            shutil.copy2(a.run / f, dest / f)
    meta = json.loads((dest / "supportbot.json").read_text())
    if "data" in meta:
        meta["data"] = [{**d, "path": Path(d["path"]).name} for d in meta["data"]]  # no local paths
    if a.fp16:
        import torch
        from safetensors.torch import load_file, save_file

        weights = load_file(str(dest / "adapter_model.safetensors"))
        save_file({k: v.to(torch.float16) for k, v in weights.items()}, str(dest / "adapter_model.safetensors"))
        meta["stored_dtype"] = "float16"
    (dest / "supportbot.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    size = sum(p.stat().st_size for p in dest.iterdir())
    print(f"shipped {a.run} as {dest} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
