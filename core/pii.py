"""The kinds of personal data that supportbot redacts, and the setting that picks them
(`SUPPORTBOT_PII_REDACT`). The vocabulary lives here so that settings can validate it;
the redaction itself is bot/redaction.py."""

from __future__ import annotations

PII_KINDS: tuple[str, ...] = ("email", "phone", "card", "cn_id", "iban", "address")


def parse_pii_kinds(value: str | None) -> tuple[str, ...]:
    """None or "all" -> every kind; "" or "none" -> nothing; else a comma-separated
    list of kinds, e.g. "email,phone" (case and spaces ignored). Unknown kinds raise
    ValueError naming the valid ones."""
    if value is None:
        return PII_KINDS
    text = value.strip().lower()
    if text == "all":
        return PII_KINDS
    if text in ("", "none"):
        return ()
    kinds = tuple(part.strip() for part in text.split(",") if part.strip())
    for kind in kinds:
        if kind not in PII_KINDS:
            raise ValueError(f"unknown PII kind {kind!r}: valid kinds are {', '.join(PII_KINDS)}")
    return kinds
