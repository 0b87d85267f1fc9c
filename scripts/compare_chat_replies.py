"""Before/after replies: the base chat model and a chat adapter answer the same held-out
conversations (greedy decoding, the dialogue's own prompt), side by side.

    python scripts/compare_chat_replies.py --data data/chat/bitext_grounded_test.jsonl \\
        --base smollm2-135m --adapter bot/shipped/chat-bitext --n 5 --out runs/chat-compare.json

Prints a Markdown table (customer turn, base, adapter) and writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--base", default="smollm2-135m")
    ap.add_argument("--adapter", default="bot/shipped/chat-bitext")
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--max-new-tokens", type=int, default=120)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)

    import torch

    from core.config import settings_with
    from finetune.chat_model import load_chat_model
    from finetune.chat_data import read_conversations

    torch.manual_seed(0)
    settings = settings_with()
    conversations = read_conversations(a.data)
    picked = random.Random(a.seed).sample(conversations, a.n)
    prompts = [list(c.messages[:-1]) for c in picked]  # up to the reply to write
    out = [{"customer": p[-1]["content"], "reference": c.messages[-1]["content"]} for p, c in zip(prompts, picked)]
    for key, ref in (("base", a.base), ("adapter", a.adapter)):
        tokenizer, model, _meta = load_chat_model(ref, settings.model_cache_dir)
        for row, messages in zip(out, prompts):
            ids = tokenizer.apply_chat_template([{"role": m["role"], "content": m["content"]} for m in messages],
                                                add_generation_prompt=True, return_tensors="pt", return_dict=True)
            t = time.monotonic()
            with torch.no_grad():
                gen = model.generate(**ids, max_new_tokens=a.max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
            row[key] = tokenizer.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
            row[f"{key}_s"] = round(time.monotonic() - t, 1)
            print(f"{key}: {row['customer'][:60]!r} -> {row[key][:80]!r}", file=sys.stderr)
    if a.out:
        a.out.write_text(json.dumps({"base": a.base, "adapter": a.adapter, "data": a.data, "rows": out},
                                    indent=2, ensure_ascii=False))

    def cell(text: str, limit: int = 260) -> str:
        text = " ".join(text.split()).replace("|", "\\|")
        return text if len(text) <= limit else text[:limit] + " …"

    print(f"| customer | base `{a.base}` | adapter `{Path(a.adapter).name}` |\n|---|---|---|")
    for row in out:
        print(f"| {cell(row['customer'], 120)} | {cell(row['base'])} | {cell(row['adapter'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
