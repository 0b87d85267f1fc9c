"""Dynamic int8 quantization of a classifier's linear layers, for CPU inference.

`torch.ao.quantization.quantize_dynamic` stores the weights of the chosen `nn.Linear`
layers as int8 (one scale per output channel) and quantizes their inputs on the fly; an
int8 GEMM (fbgemm, AVX512-VNNI) is about 3x faster than fp32 on this CPU. It is not free:
activations are quantized per tensor, so layers whose inputs carry outliers lose
accuracy. Which layers to convert was measured per architecture on the shipped sentiment
models (scripts/bench_sentiment.py --quantize int8 reports the accuracy of both sides):

* BERT (sentiment-en, MiniLM): the feed-forward layers only: SST-2 dev 87.84 -> 87.73
  (97.8% same labels); every linear layer: 87.27.
* Gemma 3 (sentiment-zh): the MLP's gate/up projections only: ChnSentiCorp test (first
  300) 88.00 -> 87.67, about 1.4x faster; q/k/v as well: 87.00; every linear layer
  breaks it (83 -> 52 on 64 texts: its activations have large outliers).

So int8 is off by default (`sentiment_quantize`): the Chinese model loses a little.

The classification head always stays in fp32.
"""

from __future__ import annotations

import logging
import re
import warnings

log = logging.getLogger(__name__)

QUANTIZE_MODES = ("none", "int8")

# model_type -> pattern of the linear layers (module names) that int8 keeps accurate.
INT8_LAYERS: dict[str, re.Pattern] = {
    "bert": re.compile(r"\.(intermediate\.dense|output\.dense)$"),  # feed-forward; not attention.output.dense
    "gemma3_text": re.compile(r"\.mlp\.(gate_proj|up_proj)$"),
    "gemma3": re.compile(r"\.mlp\.(gate_proj|up_proj)$"),
}
_HEADS = ("classifier", "score", "pooler")


def int8_layer_names(model) -> list[str]:
    """The linear layers `quantize_model(model, "int8")` converts."""
    import torch

    model_type = getattr(model.config, "model_type", "")
    pattern = INT8_LAYERS.get(model_type)
    if pattern is None:
        log.warning("int8 for %r was never measured: quantizing every linear layer but the head; "
                    "check its accuracy with scripts/bench_sentiment.py", model_type)
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or name.split(".")[0] in _HEADS:
            continue
        if "attention.output" in name and model_type == "bert":
            continue
        if pattern is None or pattern.search(name):
            names.append(name)
    return names


def quantize_model(model, mode: str):
    """The model with `mode` applied: "none" returns it unchanged; "int8" returns a
    dynamically quantized model (in place for the chosen layers)."""
    if mode == "none":
        return model
    if mode != "int8":
        raise ValueError(f"unknown quantization {mode!r}: use one of {', '.join(QUANTIZE_MODES)}")
    import torch

    names = int8_layer_names(model)
    if not names:
        return model
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        return quantize_dynamic(model.eval(), {name: per_channel_dynamic_qconfig for name in names},
                                dtype=torch.qint8, inplace=True)


def cast_model(model, dtype: str):
    """The model's weights in `dtype` ("fp32" unchanged, "bf16": every parameter and buffer
    in bfloat16; callers read the logits back as fp32). On a CPU with AMX, oneDNN runs the
    bf16 matrix products on the tile units; accuracy in both modes: README "Performance"."""
    if dtype == "fp32":
        return model
    if dtype != "bf16":
        raise ValueError(f"unknown inference dtype {dtype!r}: use fp32 or bf16")
    import torch

    return model.to(torch.bfloat16)
