"""The guard: the first step of every request. Every text a caller sends is normalised
(`normalise_text`), then limits, empty input, control characters and broken UTF-16 are
refused here, with a message that says what to change, before any model runs or
anything is stored.

Normalisation is NFKC (full-width digits and letters become ASCII, compatibility forms
are folded) except for the full-width punctuation Chinese sentences are written with
(！（），：；？～ stay as the customer wrote them), plus the removal of invisible format
characters: zero-width spaces and
joiners, the BOM, soft hyphens and the bidi controls (U+202A-U+202E, U+2066-U+2069,
U+200E/F, U+061C). Those characters let "１３８ ００１３ ８０００" or a number with a
zero-width space inside slip past redaction, and an RTL override turn what an agent
reads around. Free-form JSON (conversation metadata) gets the same rules for every key
and string value, plus limits on size, depth and count.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from core.errors import InputError, PayloadTooLargeError

# Invisible characters that change how a text reads or splits, but carry nothing a
# customer means: zero-width, joiners, word joiner, BOM, soft hyphen, bidi marks,
# embeddings, overrides and isolates, the Mongolian vowel separator.
_INVISIBLE = re.compile("[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")
_CONTROL = {chr(c) for c in range(32)} - {"\n", "\r", "\t"} | {"\x7f"}

# Conversation metadata: a small JSON object of the client's own references.
METADATA_MAX_BYTES = 8192
METADATA_MAX_DEPTH = 4  # {"a": {"b": {"c": {"d": 1}}}} is depth 4
METADATA_MAX_ITEMS = 100  # keys and list items, all levels together
METADATA_MAX_KEY_CHARS = 64
METADATA_MAX_STRING_CHARS = 1000


# The full-width punctuation Chinese sentences are written with: NFKC would turn "，" into
# ",", so these are kept. Others (＠．＋－／ ...) are folded, as they can hide an e-mail
# address or a phone number.
_CJK_PUNCTUATION = "！（），：；？～"
_NFKC_RUNS = re.compile(f"[^{_CJK_PUNCTUATION}]+")


def normalise_text(text: str) -> str:
    """NFKC (but Chinese full-width punctuation kept), without zero-width / bidi / other
    invisible format characters."""
    if not isinstance(text, str):
        return text
    text = _INVISIBLE.sub("", _surrogates_refused(text))
    return _NFKC_RUNS.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)


def _surrogates_refused(text: str) -> str:
    # Lone surrogates cannot be encoded (a JSON response with one fails half-way): refuse
    # before anything else looks at the text.
    if any("\ud800" <= c <= "\udfff" for c in text):
        bad = sorted({hex(ord(c)) for c in text if "\ud800" <= c <= "\udfff"})
        raise InputError(f"text holds broken UTF-16 (lone surrogates {', '.join(bad[:5])}): send valid Unicode")
    return text


def _bad_characters(text: str) -> list[str]:
    return sorted({hex(ord(c)) for c in text if c in _CONTROL or "\ud800" <= c <= "\udfff"})


def check_texts(texts: list[str], *, max_texts: int, max_chars: int) -> list[str]:
    """Texts to classify: returns them normalised (same order), or raises."""
    if not texts:
        raise InputError("texts must hold at least one text")
    if len(texts) > max_texts:
        raise PayloadTooLargeError(f"{len(texts)} texts in one call; the limit is {max_texts}: split the batch")
    out = []
    for i, text in enumerate(texts):
        if any("\ud800" <= c <= "\udfff" for c in text):
            raise InputError(f"texts[{i}] holds broken UTF-16 (a lone surrogate): send valid Unicode")
        text = normalise_text(text)
        if not text.strip():
            raise InputError(f"texts[{i}] is empty or whitespace")
        if len(text) > max_chars:
            raise PayloadTooLargeError(f"texts[{i}] has {len(text)} characters; the limit is {max_chars}")
        out.append(text)
    return out


def check_message(text: str, *, max_chars: int, what: str = "text") -> str:
    """A customer or agent message (or another free-text field, named by `what`): not
    empty, not too long, no control characters. Returns it normalised, without
    surrounding whitespace."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{what} is empty or whitespace" + (": send the customer's message" if what == "text" else ""))
    if len(text) > max_chars:  # before normalising: NFKC can grow a text (﷽ is 18 characters)
        raise PayloadTooLargeError(f"{what} has {len(text)} characters; the limit is {max_chars}")
    bad = _bad_characters(text)
    if bad:
        raise InputError(f"{what} holds control characters or broken UTF-16 ({', '.join(bad[:5])}): remove them")
    text = normalise_text(text).strip()
    if not text:
        raise InputError(f"{what} holds only invisible characters")
    if len(text) > max_chars:
        raise PayloadTooLargeError(f"{what} has {len(text)} characters once normalised; the limit is {max_chars}")
    return text


def check_name(value: str | None, *, what: str, max_chars: int = 255) -> str | None:
    """A short single-line field (customer_ref, channel, agent name): normalised, no line
    breaks, None stays None."""
    if value is None:
        return None
    value = check_message(value, max_chars=max_chars, what=what)
    if "\n" in value or "\r" in value or "\t" in value:
        raise InputError(f"{what} must be a single line")
    return value


def check_metadata(metadata: Any) -> dict | None:
    """Conversation metadata: a JSON object of at most METADATA_MAX_BYTES, nested at most
    METADATA_MAX_DEPTH levels, METADATA_MAX_ITEMS keys/items; keys and strings follow the
    message rules (normalised, no control characters, no broken UTF-16). Returns the
    normalised copy."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise InputError("metadata must be a JSON object")
    items = 0

    def walk(value: Any, depth: int, where: str) -> Any:
        nonlocal items
        if isinstance(value, (dict, list)):
            if depth >= METADATA_MAX_DEPTH:
                raise InputError(f"metadata is nested too deeply at {where}: at most {METADATA_MAX_DEPTH} levels")
            items += len(value)
            if items > METADATA_MAX_ITEMS:
                raise PayloadTooLargeError(f"metadata has more than {METADATA_MAX_ITEMS} keys and items")
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InputError(f"metadata keys must be strings at {where}")
                clean = check_name(key, what=f"metadata key at {where}", max_chars=METADATA_MAX_KEY_CHARS)
                out[clean] = walk(item, depth + 1, f"{where}.{clean}")
            return out
        if isinstance(value, list):
            return [walk(item, depth + 1, f"{where}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, str):
            if not value:
                return value
            return check_message(value, max_chars=METADATA_MAX_STRING_CHARS, what=f"metadata value at {where}")
        if value is None or isinstance(value, (bool, int, float)):
            if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
                raise InputError(f"metadata value at {where} is not a finite number")
            return value
        raise InputError(f"metadata value at {where} is not JSON")

    clean = walk(metadata, 0, "metadata")
    size = len(json.dumps(clean, ensure_ascii=False).encode())
    if size > METADATA_MAX_BYTES:
        raise PayloadTooLargeError(f"metadata is {size} bytes as JSON; the limit is {METADATA_MAX_BYTES}")
    return clean
