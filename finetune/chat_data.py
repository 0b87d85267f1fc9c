"""Chat JSONL (OpenAI fine-tuning format) and its tokenization with an assistant-only loss mask.

One conversation per line:

    {"messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."},
                  {"role": "assistant", "content": "..."}, ...]}

Roles are system, user and assistant; every message needs non-empty string content and a
conversation needs at least one assistant message. As in OpenAI's format, an assistant message
may carry "weight": 0 to be shown to the model but not trained on.

`encode` renders a conversation with the tokenizer's own chat template and labels only the
assistant turns (their content and the template's end-of-turn marker); every other token,
the system and user turns and the role headers, gets the label -100 and costs no loss.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from core.errors import InputError
from finetune.sampling import hold_out, weighted_mix

ROLES = ("system", "user", "assistant")
IGNORE_INDEX = -100  # labels with this value are left out of the loss (torch cross_entropy's default)
DEFAULT_MAX_LENGTH = 384  # tokens; a Bitext exchange with the system prompt is ~150-350 SmolLM2 tokens
MAX_LISTED_PROBLEMS = 10


@dataclass(frozen=True)
class Conversation:
    messages: tuple[dict, ...]  # {"role", "content"} and, for assistant messages, "weight"
    where: str  # "file:line", for error messages

    @property
    def key(self) -> str:
        """Identity for de-duplication (eval conversations never appear in train)."""
        return json.dumps(self.messages, sort_keys=True, ensure_ascii=False)


def _check_message(i: int, message) -> str | None:
    if not isinstance(message, dict):
        return f"message {i} is not an object"
    role, content = message.get("role"), message.get("content")
    if role not in ROLES:
        return f"message {i} has unknown role {role!r} (use system, user or assistant)"
    if not isinstance(content, str):
        return f"message {i} ({role}): content must be a string"
    if not content.strip():
        return f"message {i} ({role}) has empty content"
    if "weight" in message and (role != "assistant" or message["weight"] not in (0, 1)):
        return f"message {i} ({role}): weight must be 0 or 1, on assistant messages only"
    return None


def _parse_line(line: str) -> tuple[tuple[dict, ...] | None, str | None]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, f"not JSON ({exc.msg})"
    if not isinstance(obj, dict) or "messages" not in obj:
        return None, 'expected an object with "messages": [{"role": ..., "content": ...}, ...]'
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        return None, '"messages" must be a non-empty list'
    for i, message in enumerate(messages, 1):
        problem = _check_message(i, message)
        if problem:
            return None, problem
    if not any(m["role"] == "assistant" and m.get("weight", 1) for m in messages):
        return None, "no assistant message to train on"
    kept = tuple({"role": m["role"], "content": m["content"],
                  **({"weight": m["weight"]} if "weight" in m else {})} for m in messages)
    return kept, None


def read_conversations(path: str | Path) -> list[Conversation]:
    """Read and validate a chat JSONL file; all problems are reported at once, with file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    conversations, problems = [], []
    try:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                messages, problem = _parse_line(line)
                if problem:
                    problems.append(f"{path}:{n}: {problem}")
                else:
                    conversations.append(Conversation(messages, f"{path}:{n}"))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    if problems:
        more = len(problems) - MAX_LISTED_PROBLEMS
        raise InputError("; ".join(problems[:MAX_LISTED_PROBLEMS]) + (f"; ... and {more} more" if more > 0 else ""))
    if not conversations:
        raise InputError(f"{path}: no conversations")
    return conversations


def mix(sources: list[tuple[list[Conversation], float]], seed: int) -> list[Conversation]:
    """Weighted concatenation, as finetune.data.mix: 0.5 keeps a random half, 2 repeats twice."""
    return weighted_mix(sources, random.Random(seed))


def split(conversations: list[Conversation], eval_fraction: float, seed: int) -> tuple[list, list]:
    """Hold out a random share of the distinct conversations; held-out ones never appear in train."""
    rng = random.Random(seed)
    keys = sorted({c.key for c in conversations})
    rng.shuffle(keys)
    held = set(keys[: max(1, round(len(keys) * eval_fraction))])
    return hold_out(conversations, lambda c: c.key, held)


# ---- tokenization -----------------------------------------------------------------------


def _render(tokenizer, messages, where: str, generation_prompt: bool = False) -> str:
    try:
        return tokenizer.apply_chat_template([{"role": m["role"], "content": m["content"]} for m in messages],
                                             tokenize=False, add_generation_prompt=generation_prompt)
    except Exception as exc:  # noqa: BLE001 - templates raise anything (jinja errors, raise_exception)
        raise InputError(f"{where}: the chat template cannot render this conversation ({exc})") from None


def assistant_spans(tokenizer, conversation: Conversation) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character spans of the trained assistant turns.

    Each span is what rendering messages[:i+1] adds to messages[:i] + the generation prompt:
    the assistant content plus the template's end-of-turn marker, without trailing whitespace
    (the newline after <|im_end|> is never generated)."""
    messages = conversation.messages
    text = _render(tokenizer, messages, conversation.where)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or not message.get("weight", 1):
            continue
        prompt = _render(tokenizer, messages[:i], conversation.where, generation_prompt=True)
        turn = _render(tokenizer, messages[: i + 1], conversation.where)
        if not (turn.startswith(prompt) and text.startswith(turn)):
            raise InputError(f"{conversation.where}: the chat template does not render this conversation "
                             "prefix by prefix, so the assistant turns cannot be located; use another base "
                             "or --chat-template")
        end = len(turn.rstrip())
        if end > len(prompt):
            spans.append((len(prompt), end))
    return text, spans


def encode(tokenizer, conversation: Conversation, max_length: int) -> tuple[list[int], list[int]] | None:
    """input_ids and labels (token ids on assistant tokens, IGNORE_INDEX elsewhere), cut to
    max_length tokens; None when truncation leaves no assistant token."""
    text, spans = assistant_spans(tokenizer, conversation)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"]
    labels = [tok if any(start < span_end and end > span_start for span_start, span_end in spans) else IGNORE_INDEX
              for tok, (start, end) in zip(ids, enc["offset_mapping"])]
    ids, labels = ids[:max_length], labels[:max_length]
    if all(label == IGNORE_INDEX for label in labels[1:]):  # the first token is never predicted
        return None
    return ids, labels


def encode_all(tokenizer, conversations: list[Conversation], max_length: int) -> tuple[list, int]:
    """Encoded conversations and how many were dropped (no assistant token within max_length)."""
    encoded = [encode(tokenizer, c, max_length) for c in conversations]
    kept = [e for e in encoded if e is not None]
    return kept, len(encoded) - len(kept)


def collate(items: list[tuple[list[int], list[int]]], pad_id: int) -> dict:
    """Right-pad a batch to its longest example (dynamic padding)."""
    import torch

    width = max(len(ids) for ids, _ in items)
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, (ids, lab) in enumerate(items):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(lab)] = torch.tensor(lab)
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def eval_batches(encoded: list, batch_size: int, pad_id: int):
    """Batches sorted by length (little padding), longest first (memory problems show at once)."""
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][0]))
    for start in range(0, len(order), batch_size):
        yield collate([encoded[i] for i in order[start : start + batch_size]], pad_id)
