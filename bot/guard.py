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


_CONTROL = {chr(c) for c in range(32)} - {"\n", "\r", "\t"}


def check_message(text: str, *, max_chars: int, what: str = "text") -> str:
    """A customer or agent message (or another free-text field, named by `what`): not
    empty, not too long, no control characters. Returns it without surrounding whitespace."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{what} is empty or whitespace" + (": send the customer's message" if what == "text" else ""))
    if len(text) > max_chars:
        raise PayloadTooLargeError(f"{what} has {len(text)} characters; the limit is {max_chars}")
    bad = sorted({hex(ord(c)) for c in text if c in _CONTROL or "\ud800" <= c <= "\udfff"})
    if bad:
        raise InputError(f"{what} holds control characters or broken UTF-16 ({', '.join(bad[:5])}): remove them")
    return text.strip()
