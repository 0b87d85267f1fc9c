"""Faithfulness: a generated reply may state only the facts its sources state.

Every number, amount ($9.90, ¥99, 9,90 €), duration (30 days, 48 hours, 3-5 business
days, 30 天, 48小时), percentage, time of day, phone number, e-mail, URL or domain, and
quoted menu path ("My Orders" → "Track package", 「我的订单」, “申请售后”) in a reply
must appear in the sources it was written from (the retrieved article), or in what the
customer wrote (an order number they gave). `unsupported(reply, sources, allowed)` lists
the spans that do not.

Comparison is by meaning, not spelling: full-width characters count as ASCII, "1,000"
is 1000 and "9,90" is 9.9, "$9.90" matches "9.90", "30-day" matches "30 days", "三十天"
matches "30天", "twenty-four hours" matches "24 hours", a phone number matches with
any separators or an added country code. A number with a unit must come with the same
unit in the sources ("30 days" is not supported by "30 minutes"); a bare number or an
amount only needs the same value somewhere. A range supports each of its ends.

`check_stream` applies the check to a reply as it streams: it releases text up to the
end of each finished sentence whose claims are all supported, and raises UnfaithfulReply
(a GenerationError, so the dialogue answers from the article instead) as soon as a
sentence holds one that is not; that sentence is never sent.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Iterable, Iterator

from bot.generation import GenerationError


class UnfaithfulReply(GenerationError):
    """The reply stated something (a number, a contact, a menu path) its sources do not;
    the dialogue falls back to the article's own sentences."""

    def __init__(self, spans: list[str]):
        super().__init__(f"the reply stated {', '.join(repr(s) for s in spans)}, which its sources do not; "
                         "answering from the article")
        self.spans = spans


# -- what counts as a claim -----------------------------------------------------------------------------------

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.A)
_URL_PATH = r"[A-Za-z0-9\-._~%!$&*+,;=:@/?#]"
_URL = re.compile(rf"(?:\bhttps?://|\bwww\.){_URL_PATH}+|"
                  rf"\b(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{{2,12}}\b(?:/{_URL_PATH}*)?", re.I | re.A)
_PHONE = re.compile(r"(?<![\w.,])\+?\(?\d[\d\s().\-]{5,}\d(?![\w])")  # 7+ digits: phone, long reference
_TIME = re.compile(r"(?<![\d:])(\d{1,2}):(\d{2})(?![\d:])")
_QUOTES = [re.compile(p) for p in (
    r'"([^"\n]{1,80})"', r"“([^”\n]{1,80})”", r"「([^」\n]{1,80})」", r"『([^』\n]{1,80})』", r"【([^】\n]{1,80})】",
    r"《([^》\n]{1,80})》", r"(?<!\w)'([^'\n]{1,80})'(?!\w)", r"‘([^’\n]{1,80})’(?!\w)")]
_PATH_STEP = re.compile(r"\s*(?:->|→|⟶|›|»|>)\s*")

_SMALL = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
          "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_WORD = (rf"(?:(?:{'|'.join(_TENS)})(?:[\s-](?:{'|'.join(_SMALL[1:10])}))?|(?:a|one) hundred|{'|'.join(_SMALL[::-1])})")
_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN = r"[零〇一二两三四五六七八九十百]+"
_NUM = r"\d{1,3}(?:\.\d{3})+,\d+|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:[.,]\d+)?"


def _value_re(i: int) -> str:
    return rf"(?:(?P<num{i}>{_NUM})|(?P<cn{i}>{_CN})|\b(?P<word{i}>{_WORD})\b)"


_UNITS = {  # unit class: how the unit may be written
    "day": r"(?:business|working|calendar|week)?\s*-?\s*days?\b|个?工作日|天|日",
    "hour": r"hours?\b|hrs?\b|h\b|个?小时|钟头",
    "minute": r"minutes?\b|mins?\b|分钟",
    "week": r"weeks?\b|个?(?:星期|礼拜)|周",
    "month": r"months?\b|个月|月",
    "year": r"years?\b|yrs?\b|年",
    "percent": r"%|percent\b|per cent\b",
    "discount": r"折",
}
_CURRENCY_BEFORE = r"(?:[$€£¥]|us\$|hk\$|usd|eur|rmb|cny)"
_CURRENCY_AFTER = r"(?:[$€£¥]|元|块钱?|美元|欧元|dollars?\b|euros?\b|usd\b|eur\b|rmb\b|cny\b|yuan\b)"
_QUANTITY = re.compile(
    rf"(?P<percent_of>百分之)?(?P<cur>{_CURRENCY_BEFORE})?\s?{_value_re(1)}"
    rf"(?:\s*(?:-|–|—|~|～|to|至|到)\s*(?:{_CURRENCY_BEFORE}\s?)?{_value_re(2)})?"
    rf"(?:\s*-?\s*(?:{'|'.join(f'(?P<u_{k}>{v})' for k, v in _UNITS.items())}|(?P<cur_after>{_CURRENCY_AFTER})))?",
    re.I)
_LIST_MARKER = re.compile(r"(?:^|\n|[.!?。！？]\s)\s*$")  # what precedes "1." in a numbered list


@dataclass(frozen=True)
class _Claim:
    span: str
    kind: str  # quantity, digits, time, email, url, quote
    key: object


def _normalise(text: str) -> str:
    """Full-width → ASCII (NFKC), without zero-width characters."""
    return re.sub(r"[\u200b-\u200f\u2060\ufeff]", "", unicodedata.normalize("NFKC", text))


def _number(text: str) -> Decimal | None:
    if re.fullmatch(r"\d{1,3}(?:\.\d{3})+,\d+", text):  # 1.234,50
        text = text.replace(".", "").replace(",", ".")
    elif re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", text):  # 1,234.50
        text = text.replace(",", "")
    else:  # 9.90 or 9,90
        text = text.replace(",", ".")
    try:
        return Decimal(text).normalize()
    except InvalidOperation:
        return None


def _chinese_number(text: str) -> Decimal | None:
    if "十" not in text and "百" not in text:  # digit by digit: 二零二四
        return Decimal("".join(str(_CN_DIGITS[c]) for c in text)) if text else None
    total, current = 0, 0
    for c in text:
        if c == "十":
            total, current = total + (current or 1) * 10, 0
        elif c == "百":
            total, current = total + (current or 1) * 100, 0
        else:
            current = _CN_DIGITS[c]
    return Decimal(total + current)


def _word_number(text: str) -> Decimal:
    words = re.split(r"[\s-]+", text.lower())
    if words[-1] == "hundred":
        return Decimal(100)
    value = _TENS.get(words[0], 0)
    return Decimal(value + (_SMALL.index(words[-1]) if words[-1] in _SMALL else 0))


def _value(m: re.Match, i: int) -> tuple[Decimal | None, bool]:
    """(the value of the i-th number in a quantity match, whether it was written in digits)"""
    if m.group(f"num{i}"):
        return _number(m.group(f"num{i}")), True
    if m.group(f"cn{i}"):
        return _chinese_number(m.group(f"cn{i}")), False
    if m.group(f"word{i}"):
        return _word_number(m.group(f"word{i}")), False
    return None, False


def _fold(text: str) -> str:
    """For substring comparisons: lower case, no quote marks, single spaces."""
    text = re.sub(r"[\"'“”‘’「」『』【】《》]", "", _normalise(text).lower())
    return re.sub(r"\s+", " ", text)


def _claims(text: str) -> list[_Claim]:
    text = _normalise(text)
    claims: list[_Claim] = []
    work = text

    def blank(m: re.Match) -> None:
        nonlocal work
        work = work[:m.start()] + " " * (m.end() - m.start()) + work[m.end():]

    for pattern in _QUOTES:
        for m in pattern.finditer(text):
            for step in _PATH_STEP.split(m.group(1)):
                step = _fold(step).strip(" .,:;!?。，：；！？")
                if re.search(r"\w", step):
                    claims.append(_Claim(m.group(0), "quote", step))
    for m in list(_EMAIL.finditer(work)):
        claims.append(_Claim(m.group(0), "email", m.group(0).lower()))
        blank(m)
    for m in list(_URL.finditer(work)):
        url = m.group(0).rstrip(".,;:!?")
        key = re.sub(r"^(?:https?://)?(?:www\.)?", "", url.lower()).rstrip("/")
        if not re.fullmatch(r"[\d.]+", key):
            claims.append(_Claim(url, "url", key))
            blank(m)
    for m in list(_PHONE.finditer(work)):
        digits = re.sub(r"\D", "", m.group(0))
        if len(digits) >= 7:  # a phone number, or numbers in a row ("19.90 - 29.90"): its parts
            parts = tuple(v for v in (_number(n) for n in re.findall(_NUM, m.group(0))) if v is not None)
            claims.append(_Claim(m.group(0).strip(), "digits", (digits, parts)))
            blank(m)
    for m in list(_TIME.finditer(work)):
        claims.append(_Claim(m.group(0), "time", int(m.group(1)) * 60 + int(m.group(2))))
        blank(m)
    for m in _QUANTITY.finditer(work):
        unit = next((k for k in _UNITS if m.group(f"u_{k}")), None)
        if m.group("percent_of"):
            unit = "percent"
        has_unit = unit is not None or bool(m.group("cur") or m.group("cur_after"))
        for i in (1, 2):
            value, digits = _value(m, i)
            if value is None or not (digits or has_unit):  # "one of", "一下": not a claim
                continue
            if i == 1 and not has_unit and _value_count(m) == 1 and _list_marker(work, m):
                continue
            claims.append(_Claim(m.group(0).strip(), "quantity", (value, unit)))
    return claims


def _value_count(m: re.Match) -> int:
    return 1 + bool(m.group("num2") or m.group("cn2") or m.group("word2"))


def _list_marker(text: str, m: re.Match) -> bool:
    """'1.' / '2)' / '3、' opening an item of a numbered list, not a claim."""
    after = text[m.end():m.end() + 2]
    start = m.start("num1") if m.group("num1") else m.start()
    return (bool(re.match(r"[.)、]\s|[.)、]$", after) or after[:1] == "、")
            and _LIST_MARKER.search(text[:start]) is not None and len(m.group("num1") or "") <= 2)


@dataclass
class _Evidence:
    """What the sources (and the customer) said, indexed for the checks."""
    folded: str = ""
    values: set = field(default_factory=set)
    pairs: set = field(default_factory=set)
    digits: set = field(default_factory=set)
    times: set = field(default_factory=set)

    @classmethod
    def of(cls, texts: Iterable[str]) -> "_Evidence":
        evidence = cls()
        texts = [t for t in texts if t]
        evidence.folded = "\n".join(_fold(t) for t in texts)
        for text in texts:
            for c in _claims(text):
                if c.kind == "quantity":
                    evidence.values.add(c.key[0])
                    evidence.pairs.add(c.key)
                elif c.kind == "digits":
                    evidence.digits.add(c.key[0])
                    evidence.values.update(c.key[1])
                elif c.kind == "time":
                    evidence.times.add(c.key)
        return evidence

    def supports(self, claim: _Claim) -> bool:
        if claim.kind == "quantity":
            value, unit = claim.key
            return (value in self.values) if unit is None else (claim.key in self.pairs)
        if claim.kind == "digits":
            digits, parts = claim.key
            same = any(digits == d or digits.endswith(d) or d.endswith(digits) for d in self.digits)  # +86 …
            return same or all(p in self.values for p in parts)
        if claim.kind == "time":
            return claim.key in self.times
        return claim.key in self.folded  # email, url, quote: as written in the sources


def _unsupported(reply: str, evidence: _Evidence) -> list[str]:
    spans: list[str] = []
    for claim in _claims(reply):
        if not evidence.supports(claim) and claim.span not in spans:
            spans.append(claim.span)
    return spans


def unsupported(reply: str, sources: list[str], allowed: Iterable[str] = ()) -> list[str]:
    """The spans of `reply` (numbers, amounts, durations, percentages, times, phone
    numbers, e-mails, URLs, quoted menu paths) found neither in `sources` nor in
    `allowed` (what the customer wrote)."""
    return _unsupported(reply, _Evidence.of([*sources, *allowed]))


# -- streaming ------------------------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"[。！？\n]|[.!?](?=\s)")
_PAIRS = (("“", "”"), ("「", "」"), ("『", "』"), ("【", "】"), ("《", "》"))


def _quotes_closed(text: str) -> bool:
    return text.count('"') % 2 == 0 and all(text.count(a) <= text.count(b) for a, b in _PAIRS)


def check_stream(pieces: Iterable[str], sources: list[str], allowed: Iterable[str] = ()) -> Iterator[str]:
    """Pass a streamed reply through, a finished sentence at a time, raising
    UnfaithfulReply before any part of a sentence with an unsupported claim is sent.
    A sentence ends at . ! ? followed by a space, at 。！？ or a newline (never inside
    an open quote); the last, unterminated one is checked when the stream ends. If the
    generator itself fails, what was held back is sent first when it is supported, then
    the generator's error goes on."""
    evidence = _Evidence.of([*sources, *allowed])
    full, sent = "", 0

    def release_point() -> int:
        end = sent
        for m in _SENTENCE_END.finditer(full, sent):
            if _quotes_closed(full[:m.end()]):
                end = m.end()
        return end

    upstream = iter(pieces)
    while True:
        try:
            piece = next(upstream)
        except StopIteration:
            break
        except Exception:
            if full[sent:] and not _unsupported(full, evidence):
                yield full[sent:]
            raise
        full += piece
        end = release_point()
        if end > sent:
            bad = _unsupported(full[:end], evidence)
            if bad:
                raise UnfaithfulReply(bad)
            yield full[sent:end]
            sent = end
    if full[sent:]:
        bad = _unsupported(full, evidence)
        if bad:
            raise UnfaithfulReply(bad)
        yield full[sent:]
