"""Shrink a LoRA adapter to a lower rank: the best rank-k approximation (truncated SVD)
of each layer's update B·A, with alpha scaled so alpha/r, the update's scale, is kept.

    python scripts/shrink_adapter.py bot/shipped/chat-bitext --rank 8

Rewrites adapter_model.safetensors (fp16) and adapter_config.json in place and records
the shrink in supportbot.json. Re-measure afterwards (`supportbot eval chat`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from core.adapter_artifact import load_meta, write_meta


def shrink(a: torch.Tensor, b: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A (r×in), B (out×r) -> A' (k×in), B' (out×k) with B'A' the best rank-k B·A."""
    qb, rb = torch.linalg.qr(b.double())          # B = Qb Rb
    qa, ra = torch.linalg.qr(a.double().T)        # Aᵀ = Qa Ra
    u, s, vh = torch.linalg.svd(rb @ ra.T)        # B·A = Qb (Rb Raᵀ) Qaᵀ
    root = s[:rank].sqrt()
    return (root[:, None] * (vh[:rank] @ qa.T)).float(), ((qb @ u[:, :rank]) * root).float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("adapter", type=Path)
    ap.add_argument("--rank", type=int, required=True)
    args = ap.parse_args()
    config = json.loads((args.adapter / "adapter_config.json").read_text())
    old_rank = config["r"]
    if args.rank >= old_rank:
        raise SystemExit(f"--rank {args.rank} is not below the adapter's rank {old_rank}")
    weights = {k: v.float() for k, v in load_file(str(args.adapter / "adapter_model.safetensors")).items()}
    out, kept = {}, []
    for key, a in weights.items():
        if "lora_A" not in key:
            if "lora_B" not in key:
                out[key] = a
            continue
        b_key = key.replace("lora_A", "lora_B")
        new_a, new_b = shrink(a, weights[b_key], args.rank)
        full = torch.linalg.matrix_norm(weights[b_key] @ a)
        kept.append(float(torch.linalg.matrix_norm(new_b @ new_a) / full) if full > 0 else 1.0)
        out[key], out[b_key] = new_a, new_b
    save_file({k: v.to(torch.float16) for k, v in out.items()}, str(args.adapter / "adapter_model.safetensors"))
    config["lora_alpha"] = config["lora_alpha"] * args.rank / old_rank
    config["r"] = args.rank
    (args.adapter / "adapter_config.json").write_text(json.dumps(config, indent=2))
    meta = load_meta(args.adapter)
    meta["shrunk"] = {"from_rank": old_rank, "to_rank": args.rank, "min_norm_kept": round(min(kept), 4),
                      "mean_norm_kept": round(sum(kept) / len(kept), 4)}
    meta.setdefault("lora", {}).update(r=args.rank, alpha=config["lora_alpha"])
    write_meta(args.adapter, meta)
    size = (args.adapter / "adapter_model.safetensors").stat().st_size
    print(f"{args.adapter}: rank {old_rank} -> {args.rank}, update norm kept {min(kept):.3f} (min) "
          f"{sum(kept) / len(kept):.3f} (mean), {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
