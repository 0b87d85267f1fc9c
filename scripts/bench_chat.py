"""Time to first token and tokens/s of the chat model, on a grounded prompt from the demo KB.

    python scripts/bench_chat.py [--model chat-bitext] [--repeats 3] [--max-tokens 96] [--json runs/bench-chat.json]

Median of --repeats runs after one warm-up. Prefill: one forward pass over the prompt.
TTFT: from the call to the first streamed text piece. Tokens/s: generated tokens over the
time after the first piece. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import settings_with  # noqa: E402
from bot.generation import GenerationParams, LocalGenerator  # noqa: E402
from bot.knowledge import DEMO_KB_DIR, read_article_files  # noqa: E402
from bot.prompting import system_message  # noqa: E402
from bot.retrieval import Hit  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import torch

    settings = settings_with(chat_model=args.model)
    gen = LocalGenerator.load(settings.chat_model, settings.model_cache_dir)
    article = next(a for a in read_article_files([DEMO_KB_DIR]) if a.id == "en-return-policy")
    messages = [{"role": "system", "content": system_message([Hit(article.id, article.title, article.body, "en", 1.0)],
                                                              language="en", upset=False)},
                {"role": "user", "content": "How many days do I have to send something back?"}]
    prompt_tokens = gen.count_tokens(messages)
    rows = []
    for i in range(args.repeats + 1):
        enc = gen.encode(messages)
        t = time.perf_counter()
        with torch.inference_mode():
            gen.model(**enc)
        prefill = time.perf_counter() - t
        t = time.perf_counter()
        first, text = None, ""
        for piece in gen.stream(messages, GenerationParams(max_tokens=args.max_tokens)):
            first = first or time.perf_counter()
            text += piece
        end = time.perf_counter()
        n = len(gen.tokenizer(text, add_special_tokens=False)["input_ids"])
        if i:  # the first run warms up
            rows.append({"prefill_s": prefill, "ttft_s": first - t, "tokens": n,
                         "tokens_per_s": (n - 1) / (end - first) if n > 1 else 0.0})
    result = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    result.update(model=gen.name, prompt_tokens=prompt_tokens, threads=torch.get_num_threads(), sample=text)
    print(f"{'model':<14} {'prompt tok':>10} {'prefill s':>9} {'TTFT s':>7} {'TTFT/prefill':>12} {'tokens/s':>8}")
    print(f"{gen.name:<14} {prompt_tokens:>10} {result['prefill_s']:>9.3f} {result['ttft_s']:>7.3f} "
          f"{result['ttft_s'] / result['prefill_s']:>12.2f} {result['tokens_per_s']:>8.1f}")
    print("reply:", text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
