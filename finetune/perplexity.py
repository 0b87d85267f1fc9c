"""Perplexity of a causal LM on chat conversations, counting assistant tokens only.

perplexity = exp(mean negative log-likelihood per labelled token), the mean taken over all
assistant tokens of the data set (not per conversation), so long answers weigh more. Used
by the chat recipe's evaluations and by `supportbot eval chat`.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from finetune.chat_data import DEFAULT_MAX_LENGTH, IGNORE_INDEX, encode_all, eval_batches, read_conversations

EVAL_BATCH_SIZE = 8  # logits are batch x tokens x vocabulary floats: 8 x 384 x 49k = 600 MB
SAMPLE_SEED = 42  # the chat recipe's default --seed: --max-samples N picks the same rows as --max-eval-samples N


def perplexity(model, batches) -> dict:
    """eval_loss (mean NLL per assistant token), perplexity and the token count."""
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            logits = logits[:, :-1].float()
            targets = batch["labels"][:, 1:]
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                     ignore_index=IGNORE_INDEX, reduction="sum").item()
            count += int((targets != IGNORE_INDEX).sum())
    if was_training:
        model.train()
    if not count:
        raise ValueError("no assistant tokens to evaluate")
    loss = total / count
    return {"eval_loss": loss, "perplexity": math.exp(loss), "eval_tokens": count}


def evaluate_chat(ref: str, data: str | Path, cache_dir: Path, *, max_samples: int = 0,
                  batch_size: int = EVAL_BATCH_SIZE) -> dict:
    """`supportbot eval chat`: a model reference or a chat adapter directory on a chat JSONL file."""
    from finetune.chat_model import load_chat_model

    conversations = read_conversations(data)
    if max_samples and len(conversations) > max_samples:
        conversations = random.Random(SAMPLE_SEED).sample(conversations, max_samples)
    tokenizer, model, meta = load_chat_model(ref, cache_dir)
    max_length = (meta or {}).get("max_length", DEFAULT_MAX_LENGTH)
    encoded, dropped = encode_all(tokenizer, conversations, max_length)
    if not encoded:
        from core.errors import InputError

        raise InputError(f"{data}: no conversation has an assistant token within the first {max_length} tokens")
    result = perplexity(model, eval_batches(encoded, batch_size, tokenizer.pad_token_id))
    return {"model": ref, "data": str(data), "n": len(encoded), "dropped": dropped, "max_length": max_length,
            **result}
