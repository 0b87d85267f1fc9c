"""Language detection by script: fast, deterministic, no model.

Chinese (Han without kana/hangul) -> "zh", Japanese (kana) -> "ja", Korean (hangul) -> "ko",
Cyrillic -> "ru", Arabic -> "ar", Greek -> "el", Thai -> "th", Devanagari -> "hi";
Latin-script text -> "en" (supportbot's customers write English or Chinese; other Latin
languages are not told apart). Text without letters -> "und".
"""

from __future__ import annotations

_RANGES = [
    ("zh", 0x4E00, 0x9FFF), ("zh", 0x3400, 0x4DBF), ("zh", 0xF900, 0xFAFF), ("zh", 0x20000, 0x2A6DF),
    ("ja", 0x3040, 0x30FF), ("ko", 0xAC00, 0xD7AF), ("ko", 0x1100, 0x11FF),
    ("ru", 0x0400, 0x04FF), ("ar", 0x0600, 0x06FF), ("el", 0x0370, 0x03FF),
    ("th", 0x0E00, 0x0E7F), ("hi", 0x0900, 0x097F),
]


def _script(ch: str) -> str | None:
    cp = ord(ch)
    if ch.isascii():
        return "en" if ch.isalpha() else None
    for lang, lo, hi in _RANGES:
        if lo <= cp <= hi:
            return lang
    if ch.isalpha() and cp < 0x250:  # Latin-1 / Latin Extended letters
        return "en"
    return None


def detect_language(text: str) -> str:
    counts: dict[str, int] = {}
    for ch in text:
        lang = _script(ch)
        if lang:
            counts[lang] = counts.get(lang, 0) + 1
    if not counts:
        return "und"
    if counts.get("ja"):  # kana marks Japanese even among many Han characters
        return "ja"
    if counts.get("ko"):
        return "ko"
    # One Han character carries about as much as a short Latin word (4 letters).
    weighted = {lang: n * (4 if lang == "zh" else 1) for lang, n in counts.items()}
    return max(weighted, key=weighted.get)


def is_cjk(language: str) -> bool:
    return language in ("zh", "ja")
