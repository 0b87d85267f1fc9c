"""Merge a chat LoRA adapter into its base model: a plain transformers directory
(safetensors + tokenizer + chat template) that vLLM, TGI or transformers serve as is.

    supportbot finetune merge runs/chat-bitext --output runs/chat-bitext-merged [--dtype bfloat16]

The base is always loaded in full precision, also for an adapter trained with QLoRA / --bits
(merging into quantized weights would round the LoRA update away).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from core.adapter_artifact import META_FILE, is_adapter_dir, load_meta, read_meta
from core.errors import InputError
from finetune.args import parse_and_validate

log = logging.getLogger("supportbot.finetune")

DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class MergeArgs:
    adapter: str = field(default="", metadata={"help": "chat adapter directory (from supportbot finetune chat); also the first positional argument"})
    output: str = field(default="", metadata={"help": "directory for the merged model (must not exist, or be empty)"})
    dtype: str = field(default="float32", metadata={"help": "weights dtype of the merged model: float32, bfloat16 or float16"})

    def validate(self) -> None:
        problems = []
        if not self.adapter:
            problems.append("give the adapter directory: supportbot finetune merge ADAPTER_DIR --output DIR")
        elif not is_adapter_dir(self.adapter):
            problems.append(f"{self.adapter}: not a supportbot adapter directory (no {META_FILE})")
        elif (task := load_meta(self.adapter).get("task")) != "chat":
            problems.append(f"{self.adapter} is a {task} adapter; merge handles chat adapters only")
        if not self.output:
            problems.append("--output is required")
        elif Path(self.output).exists() and any(Path(self.output).iterdir()):
            problems.append(f"--output {self.output} exists and is not empty; remove it or choose another directory")
        if self.dtype not in DTYPES:
            problems.append(f"--dtype must be one of {', '.join(DTYPES)}")
        if problems:
            raise InputError("; ".join(problems))


def main(argv: list[str] | None = None) -> Path:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):  # the adapter directory, given positionally
        argv = ["--adapter", *argv]
    return run(parse_and_validate(MergeArgs, argv))


def run(args: MergeArgs) -> Path:
    import torch

    from core.config import settings_with
    from finetune.chat_model import load_chat_model

    meta = read_meta(args.adapter)
    trained_on = f" (it was trained on a {meta['quantization']}-quantized base)" if meta.get("quantization") else ""
    log.info("merging %s onto the full-precision (float32) base %s%s", args.adapter, meta["base"], trained_on)
    tokenizer, model, _ = load_chat_model(args.adapter, settings_with().model_cache_dir)
    merged = model.merge_and_unload().to(getattr(torch, args.dtype))
    if merged.config.pad_token_id is None:
        merged.config.pad_token_id = tokenizer.pad_token_id

    out = Path(args.output)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)  # with chat_template.jinja
    config = json.loads((tmp / "config.json").read_text())
    if "quantization_config" in config and not config["quantization_config"]:
        del config["quantization_config"]  # a null left by the GGUF conversion of packaged bases; servers may trip on it
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
    metrics = meta.get("metrics", {})
    (tmp / "README.md").write_text(
        f"# {meta['version']} (merged)\n\n"
        f"The chat adapter `{meta['version']}` merged into its base `{meta['base']}` (full precision{trained_on}), "
        f"saved as {args.dtype}.\nA plain transformers model: serve it with vLLM, TGI or transformers.\n\n"
        f"Adapter metrics: perplexity {metrics.get('perplexity', float('nan')):.2f} (base "
        f"{metrics.get('base_perplexity', float('nan')):.2f}) on {metrics.get('n_eval', '?')} eval conversations.\n",
        encoding="utf-8")
    if out.exists():
        out.rmdir()  # empty, checked by validate()
    tmp.rename(out)
    print(f"merged {args.adapter} into {out}", file=sys.stderr)
    return out


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
