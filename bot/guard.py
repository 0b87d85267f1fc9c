"""The guard: the first step of every request. Limits and empty input are refused here,
with a message that says what to change, before any model runs."""

from __future__ import annotations

from bot.errors import InputError, PayloadTooLargeError


def check_texts(texts: list[str], *, max_texts: int, max_chars: int) -> None:
    if not texts:
        raise InputError("texts must hold at least one text")
    if len(texts) > max_texts:
        raise PayloadTooLargeError(f"{len(texts)} texts in one call; the limit is {max_texts}: split the batch")
    for i, text in enumerate(texts):
        if not text.strip():
            raise InputError(f"texts[{i}] is empty or whitespace")
        if len(text) > max_chars:
            raise PayloadTooLargeError(f"texts[{i}] has {len(text)} characters; the limit is {max_chars}")
