"""PII redaction, applied to customer text before it is stored or exported.

Each kind found is replaced by a placeholder; every other character stays as it was, and
redacting redacted text changes nothing (no placeholder holds a digit or an "@").

What the patterns see: callers normalise text (NFKC, zero-width and bidi controls
stripped) before redaction, but the redactor does not rely on it (rows exported from
older data are redacted again without that step). Matching runs on a folded view of the
text: full-width and other Unicode digits and letters (１３８, ＡＢ, Arabic-Indic digits)
and the punctuation the patterns use (＠ ． ＋ － （ ）) read as ASCII, Unicode spaces as
spaces, Unicode dashes (– — −) as "-", and invisible characters (format controls such as
U+200B-U+200F, U+202A-U+202E, U+2060, U+2066-U+2069, U+FEFF, soft hyphen; combining
marks) are skipped. What is replaced is the original span from the match's first to its
last character, so invisible characters inside a number or an e-mail go with it (those
just around it stay: they are not PII).

Detected (kind -> placeholder):
- email   -> [EMAIL]      local@domain.tld, plus-addressing and subdomains, also when
                           glued to Chinese text ("邮箱是zhang.wei@example.com.cn谢谢").
- phone   -> [PHONE]      international "+CC ..." (8-15 digits) or "00CC ..." (10-15 digits
                           after the 00, a separator after the country code: "0044 20 7946
                           0958"), with "(0)" allowed; Chinese mobile 1[3-9]xxxxxxxxx
                           (optionally +86/0086; spaces, dashes or dots); Chinese landline
                           0AA(A)-NNNNNNN(N) or (0AA)NNNNNNNN (dash, space or dot);
                           North-American (415) 555-0132 / 415-555-0132 / 415.555.0132
                           (separators needed).
- card    -> [CARD]       13-19 digits, compact or in groups (4-4-4-4, 4-6-5, 4-6-4, 8-4-4,
                           ...) separated by spaces, dashes or dots, mixed or not, only when
                           the Luhn check passes.
- cn_id   -> [ID_NUMBER]  Chinese resident ID: 17 digits + digit/X, valid ISO 7064 MOD 11-2
                           checksum and a real birth date between 1900 and today (the 6-8-4
                           grouping with spaces, dashes or dots is accepted too).
- iban    -> [IBAN]       country code + 2 check digits + BBAN, compact or grouped by spaces
                           or dashes: the country must be in the IBAN registry, the length
                           must be that country's, and the mod-97 check must pass.
- address -> [ADDRESS]    English: number + 1-4 capitalised words + street suffix
                           ("221B Baker Street"), with an optional unit before or after
                           ("Apt 4B", "Suite 200") and an optional "City, ST 12345" or UK
                           postcode after. Chinese: administrative units (省/市/区/县/镇/街道)
                           and a road (路/街/大道/大街/巷/弄/胡同) with a house number (88号) and
                           optional 栋/楼/单元/室 parts, or at least two administrative units
                           plus a road without a number.

Numbers (phone, card, cn_id) are found when glued to Chinese text ("电话13800138000谢谢")
and to words ("tel13800138000ok", "card4111111111111111exp"), but not to codes: the
letters touching a number must be a word of two or more letters that is not all upper
case (upper-case labels such as TEL, PHONE, CARD, ID are words), with no digit beyond it.
So "LS13800138000", "SF9612345678901" (order and tracking codes) and hex digests are left
alone.

Deliberately NOT detected (precision first: false positives hurt support work):
order numbers, prices, dates and times, quantities, years, tracking codes (they are not
Luhn/mod-97/checksum-valid in the right shape, or they are glued to an upper-case code),
digit runs that fail their checksum, bare 10-digit numbers without +1 or separators (too
often order numbers), numbers glued to an upper-case code or to a single letter, IBANs
glued to letters (where would they end?), numbers split over lines (a line break ends a
number: joining lines would turn lists of short codes, one a line, into cards and phone
numbers), Chinese addresses without a road or without a number (小区/村 names, "5号楼"
alone), numbers written in Chinese numerals, continental street formats ("12 Rue de
Rivoli"), P.O. boxes, names, and e-mail addresses with non-ASCII local parts. Known
trade-offs: a 13-19 digit number that happens to pass Luhn is redacted as a card (the
price of catching cards), also when glued to a lower-case word; a "00"-prefixed number
grouped like an international phone number is redacted as one; the start of a Chinese
address is found by stopping at common function characters and at well-known
province/city names, so an unusual word glued right before the first unit ("麻烦河源市...")
may be redacted with it; a product name shaped like a street ("2 Blue Street Lamps") is
redacted as an address.

Kinds are applied in a fixed order (email, iban, cn_id, card, phone, address), each on the
text left by the ones before, so a QQ-style "12345@qq.com" is an e-mail and not a phone,
an ID that also passes Luhn is an ID, and a card is never half-eaten as a phone number.
Numbers are delimited by ASCII lookarounds, not by \\b: Chinese characters count as \\w.
"""

from __future__ import annotations

import datetime as _dt
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from core.pii import PII_KINDS, parse_pii_kinds

PLACEHOLDERS: dict[str, str] = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "card": "[CARD]",
    "cn_id": "[ID_NUMBER]",
    "iban": "[IBAN]",
    "address": "[ADDRESS]",
}

# The order the kinds are applied in: the most specific shapes first.
_APPLY_ORDER: tuple[str, ...] = ("email", "iban", "cn_id", "card", "phone", "address")

# A check gets the regex match and returns how many of its leading characters to redact
# (all of it, or a shorter valid prefix), or None to leave it alone.
_Check = Callable[[str], int | None]


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    check: _Check | None = None
    glued: bool = False  # a number that may touch letters (see _glue_ok)


# --- checksums ------------------------------------------------------------------------


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK = "10X98765432"


def _cn_id_ok(value: str) -> bool:
    value = value.upper()
    if len(value) != 18 or not value[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _CN_ID_WEIGHTS))
    if _CN_ID_CHECK[total % 11] != value[17]:
        return False
    try:
        born = _dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return _dt.date(1900, 1, 1) <= born <= _dt.date.today()


# Total IBAN length per country (SWIFT IBAN registry).
_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}


def _iban_ok(compact: str) -> bool:
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


# --- checks: match text -> length to redact ----------------------------------------------


def _check_iban(candidate: str) -> int | None:
    """The candidate may run on into following words ("... 7654 32 ASAP"): the IBAN is the
    prefix, ending at a space or dash, whose compact length is the country's."""
    want = _IBAN_LENGTHS.get(candidate[:2].upper())
    if want is None:
        return None
    count = 0
    for i, ch in enumerate(candidate):
        if ch not in " -":
            count += 1
        if count == want:
            end = i + 1
            if end < len(candidate) and candidate[end] not in " -":
                return None
            compact = re.sub(r"[ \-]", "", candidate[:end]).upper()
            return end if _iban_ok(compact) else None
    return None


def _check_cn_id(candidate: str) -> int | None:
    return len(candidate) if _cn_id_ok(re.sub(r"[ .\-]", "", candidate)) else None


def _check_card(candidate: str) -> int | None:
    """The longest prefix, ending at a group boundary, of 13-19 digits that passes Luhn
    (so "4111 1111 1111 1111 12" redacts the card and keeps " 12")."""
    groups = re.split(r"([ .\-])", candidate)  # digits, sep, digits, sep, ...
    for n in range(len(groups), 0, -2):
        digits = "".join(groups[0:n:2])
        if 13 <= len(digits) <= 19 and _luhn_ok(digits):
            return len("".join(groups[:n]))
    return None


def _check_intl_phone(candidate: str) -> int | None:
    """8-15 digits after "+"; 10-15 after "00" (a bare 00 prefix is weaker evidence)."""
    digits = sum(ch.isdigit() for ch in candidate)
    if candidate.startswith("00"):
        return len(candidate) if 10 <= digits - 2 <= 15 else None
    return len(candidate) if 8 <= digits <= 15 else None


# --- patterns -----------------------------------------------------------------------------

_NOT_AFTER_ALNUM = r"(?<![A-Za-z0-9])"
_NOT_BEFORE_ALNUM = r"(?![A-Za-z0-9])"
# Numbers that may be glued to words ("tel13800138000ok") only stop at other digits here;
# _glue_ok then decides whether the letters touching them make a word or a code.
_NOT_AFTER_DIGIT = r"(?<![0-9])"
_NOT_BEFORE_DIGIT = r"(?![0-9])"
_SEP = r"[ .\-]"  # one separator between digit groups (a line break is none)

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])"
    r"[A-Za-z0-9](?:[A-Za-z0-9._%+\-]*[A-Za-z0-9_%+\-])?"  # local part, no leading/trailing dot
    r"@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*"
    r"\.[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
)

_IBAN = re.compile(
    _NOT_AFTER_ALNUM + r"[A-Za-z]{2}[0-9]{2}(?:[ \-]?[A-Za-z0-9]){11,30}" + _NOT_BEFORE_ALNUM
)

_CN_ID = re.compile(
    _NOT_AFTER_DIGIT
    + rf"[1-8][0-9]{{5}}{_SEP}?(?:19|20)[0-9]{{2}}[01][0-9][0-3][0-9]{_SEP}?[0-9]{{3}}[0-9Xx]"
    + _NOT_BEFORE_DIGIT
)

_CARD_COMPACT = re.compile(_NOT_AFTER_DIGIT + r"[1-9][0-9]{12,18}" + _NOT_BEFORE_DIGIT)
# 4-4-4-4, 4-4-4-4-3, 4-6-5 (Amex), 4-6-4 (Diners), 8-4-4, ...; spaces, dashes and dots,
# mixed (a zero-width character between two groups turns 4-4-4-4 into 8-4-4).
_CARD_GROUPED = re.compile(
    _NOT_AFTER_DIGIT
    + rf"[1-9][0-9]{{3,7}}{_SEP}[0-9]{{4,6}}(?:{_SEP}[0-9]{{1,5}}){{1,3}}"
    + _NOT_BEFORE_DIGIT
)

_PHONE_INTL = re.compile(
    # "+CC" or "00CC" (then a separator: "0044 20 ...", so a bare 00-number is no phone)
    r"(?<![0-9+])(?:\+|00(?=[1-9][0-9]{0,2}[ .\-]))[1-9][0-9]{0,2}"
    r"(?:[ .\-]?\([0-9]{1,4}\))?"  # "+1 (415)", "+44 (0)20"
    r"[ .\-]?[0-9]{1,5}"  # "+33 1 ...", "+44 20 ..."
    r"(?:[ .\-]?[0-9]{2,5}){0,5}"
    r"(?![0-9])"
)
_PHONE_CN_MOBILE = re.compile(
    rf"(?<![0-9+])(?:(?:\+|00)86{_SEP}?)?1[3-9][0-9](?:{_SEP}?[0-9]{{4}}){{2}}(?![0-9])"
)
_PHONE_CN_LANDLINE = re.compile(
    rf"(?<![0-9+])(?:\(0[1-9][0-9]{{1,2}}\){_SEP}?|0[1-9][0-9]{{1,2}}{_SEP})[0-9]{{7,8}}(?![0-9])"
)
_PHONE_NANP = re.compile(
    r"(?<![0-9+])(?:1[ .\-]?)?(?:\([2-9][0-9]{2}\)[ .\-]?|[2-9][0-9]{2}[ .\-])"
    r"[2-9][0-9]{2}[ .\-][0-9]{4}(?![0-9])"
)

_EN_UNIT = (
    r"(?:(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Room|Rm|Bldg|Building)\.?[ \t]*#?"
    r"|\#[ \t]?)[0-9A-Za-z][0-9A-Za-z\-]{0,5}(?![A-Za-z0-9])"
)
_EN_WORD = r"(?:[A-Z][A-Za-z'\-]*\.?|[0-9]{1,3}(?:st|nd|rd|th))"
_EN_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl"
    r"|Parkway|Pkwy|Terrace|Ter|Square|Sq|Highway|Hwy|Crescent|Cres|Close|Circle|Cir"
    r"|Alley|Plaza|Gardens|Mews)(?![A-Za-z])"
)
_EN_CITY_ZIP = (
    r"(?:,?(?:[ \t]+|[ \t]*\n[ \t]*)(?:[A-Z][A-Za-z'\-]*[ \t]+){0,2}[A-Z][A-Za-z'\-]*,?)?[ \t]+"
    r"(?:[A-Z]{2}[ \t]+[0-9]{5}(?:-[0-9]{4})?"  # US: "Mountain View, CA 94043"
    r"|[A-Z]{1,2}[0-9][A-Z0-9]?[ \t]?[0-9][A-Z]{2})"  # UK: "London NW1 6XE"
    r"(?![A-Za-z0-9])"
)
_EN_ADDRESS = re.compile(
    r"(?<![A-Za-z0-9$£€¥.,:/#\-])"
    rf"(?:{_EN_UNIT},?[ \t]+)?"
    r"[0-9]{1,6}[A-Za-z]?(?:-[0-9]{1,5})?[ \t]+"
    rf"(?:{_EN_WORD}[ \t]+){{1,4}}{_EN_SUFFIX}"
    rf"(?:\.?,?[ \t]+{_EN_UNIT})?"
    rf"(?:\.?{_EN_CITY_ZIP})?"
)

# Chinese addresses are runs of Han characters glued to the sentence around them, so the
# start of a name is found by what cannot be in one:
# - characters that are (almost) never part of a place name ("我住在北京市" -> "北京市");
_CN_STOP = (
    "我你您他她它们的是在住到往寄送发收址为与或请把给要想需已了吗呢吧啊呀哦嗯就也还很这么"
    "什怎能说问谢帮改换填写码话邮箱订货递件号第条从至去位司叫让被跟没别该得着做买卖退款即将"
)
# - characters that may begin a name but not continue one (于都县, 自贡市), and not begin
#   one right after the verb they belong to ("位于北京市", "来自上海市", "改成南京市");
_CN_FIRST_ONLY = "于自"
_CN_START = r"(?!(?<=[改变换写])成|(?<=[位处])于|(?<=[来源出])自)"
# - unit and road characters: they end a name (a name may start with one: 镇江市, 市南区);
_CN_UNIT_CHARS = "省市区县镇乡路街巷弄"
# - a province-level or big-city name followed by its unit starts a new name, so
#   "麻烦北京市..." is "北京市..." (only the well-known ones are listed).
_CN_KNOWN = (
    r"(?:北京|天津|上海|重庆|河北|山西|辽宁|吉林|黑龙江|江苏|浙江|安徽|福建|江西|山东|河南|湖北"
    r"|湖南|广东|海南|四川|贵州|云南|陕西|甘肃|青海|台湾|内蒙古|广西|西藏|宁夏|新疆|香港|澳门"
    r"|深圳|广州|杭州|南京|成都|武汉|西安|苏州|青岛|厦门|长沙|郑州|沈阳|大连|宁波|济南|哈尔滨"
    r"|长春|福州|合肥|昆明|南宁|石家庄|太原|南昌|贵阳|兰州|海口|东莞|佛山|无锡)"
    r"(?:省|市|自治区|特别行政区)"
)
_CN_HAN = r"[\u3400-\u4dbf\u4e00-\u9fff]"
_CN_NAME_FIRST = rf"(?:(?![{_CN_STOP}]){_CN_HAN})"
_CN_NAME_REST = rf"(?:(?![{_CN_STOP}{_CN_FIRST_ONLY}{_CN_UNIT_CHARS}]|{_CN_KNOWN}){_CN_HAN})"
# Names are 1-6 characters before an administrative unit (西双版纳傣族自治州), 1-8 before
# a road suffix; the lazy quantifiers and the rules above keep the parse near-linear.
_CN_ADMIN = (
    rf"(?:{_CN_NAME_FIRST}{_CN_NAME_REST}{{0,5}}?"
    r"(?:特别行政区|自治区|自治州|自治县|省|市|区|县|镇|乡|街道))"
)
_CN_ROAD = rf"(?:{_CN_NAME_FIRST}{_CN_NAME_REST}{{0,7}}?(?:大道|大街|胡同|路|街|巷|弄))"
_CN_PART = r"(?:[0-9]{1,5}|[A-Za-z])(?:号楼|栋|幢|座|楼|单元|层|室|房)"
_CN_NUMBER = (  # 88号, 27号院3号楼2单元501, 100号2栋302室
    rf"[0-9]{{1,5}}(?:-[0-9]{{1,5}})?号院?(?:{_CN_PART})*"
    r"(?:(?<=[栋幢座楼元层])[0-9]{2,5}(?![0-9]))?"
)
_CN_ADDRESS = re.compile(
    rf"{_CN_START}(?:{_CN_ADMIN}{{0,4}}{_CN_ROAD}{_CN_NUMBER}|{_CN_ADMIN}{{2,4}}{_CN_ROAD})"
)

_RULES: dict[str, tuple[_Rule, ...]] = {
    "email": (_Rule(_EMAIL),),
    "iban": (_Rule(_IBAN, _check_iban),),
    "cn_id": (_Rule(_CN_ID, _check_cn_id, glued=True),),
    "card": (
        _Rule(_CARD_GROUPED, _check_card, glued=True),
        _Rule(_CARD_COMPACT, _check_card, glued=True),
    ),
    "phone": (
        _Rule(_PHONE_INTL, _check_intl_phone, glued=True),
        _Rule(_PHONE_CN_MOBILE, glued=True),
        _Rule(_PHONE_CN_LANDLINE, glued=True),
        _Rule(_PHONE_NANP, glued=True),
    ),
    "address": (_Rule(_EN_ADDRESS), _Rule(_CN_ADDRESS)),
}


# --- what the patterns read: a folded view of the text -----------------------------------
# The patterns are ASCII. They run on a folded copy of the text in which full-width and
# other Unicode digits, letters and the punctuation the patterns use are their ASCII
# selves, Unicode spaces are spaces, dashes are "-", and invisible characters (format
# controls: zero-width, bidi, BOM, soft hyphen; combining marks) are gone. A match is
# mapped back to the original text, so the span replaced is everything from its first to
# its last character, invisible ones included. Other full-width punctuation (，：；) stays
# as it is: it ends a number or a sentence in Chinese text.

_FOLD_PUNCT = frozenset("@.+-()#_%'")
_DASHES = frozenset("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d")
_FOLD_CACHE_MAX = 1 << 16  # distinct code points remembered (an attacker may send them all)


def _fold_char(code: int) -> int | None:
    """What one code point is in the folded view: a code point, or None (dropped)."""
    if code < 128:
        return code
    ch = chr(code)
    category = unicodedata.category(ch)
    if category in ("Cf", "Mn", "Me"):
        return None
    if category == "Nd":
        return 48 + unicodedata.decimal(ch)
    if category == "Zs":
        return 32
    if ch in _DASHES:
        return 45
    if category == "Cs":  # a lone surrogate: leave it alone
        return code
    folded = unicodedata.normalize("NFKC", ch)
    if len(folded) == 1 and folded.isascii() and (folded.isalnum() or folded in _FOLD_PUNCT):
        return ord(folded)
    return code


class _FoldTable(dict[int, int | None]):
    """A str.translate table filled on first use."""

    def __missing__(self, code: int) -> int | None:
        value = _fold_char(code)
        if len(self) < _FOLD_CACHE_MAX:
            self[code] = value
        return value


_FOLD = _FoldTable()


def _fold(text: str) -> tuple[str, list[int] | None]:
    """The folded text and, when characters were dropped, the original index of each of its
    characters (None: the same indexes)."""
    if text.isascii():
        return text, None
    folded = text.translate(_FOLD)
    if len(folded) == len(text):
        return folded, None
    return folded, [i for i, ch in enumerate(text) if _FOLD[ord(ch)] is not None]


# A number may touch a word ("tel13800138000ok", "card4111111111111111exp"), but not a
# code: order numbers and tracking codes are digits glued to upper-case letters
# ("LS20481937", "SF1234567890123") or to single letters inside hex digests. So the
# letters touching a number must be a word of 2+ letters that is not all upper case (or
# is an upper-case label like "TEL"), and no digit may lie beyond it.
_GLUE_LABELS = frozenset({
    "TEL", "PHONE", "MOBILE", "CELL", "FAX", "CALL", "SMS", "WHATSAPP", "WECHAT", "CARD",
    "VISA", "AMEX", "ID", "IDNO",
})


def _is_ascii_letter(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def _glue_ok(text: str, start: int, end: int) -> bool:
    i = start
    while i > 0 and _is_ascii_letter(text[i - 1]):
        i -= 1
    j = end
    while j < len(text) and _is_ascii_letter(text[j]):
        j += 1
    for word, beyond in ((text[i:start], text[i - 1 : i]), (text[end:j], text[j : j + 1])):
        if not word:
            continue
        if len(word) < 2 or (word.isupper() and word not in _GLUE_LABELS):
            return False
        if beyond.isascii() and beyond.isdigit():
            return False
    return True


# --- public API --------------------------------------------------------------------------


@dataclass(frozen=True)
class Redaction:
    text: str  # the redacted text
    found: dict[str, int]  # kind -> how many were replaced, in PII_KINDS order; {} if none

    @property
    def changed(self) -> bool:
        return bool(self.found)


class Redactor:
    """Replaces the PII kinds it was built with by placeholders; see the module docstring."""

    def __init__(self, kinds: Iterable[str] = PII_KINDS) -> None:
        if isinstance(kinds, str):
            raise TypeError(
                "kinds must be an iterable of kind names, not a string: "
                f"use Redactor.from_setting({kinds!r}) to parse a setting"
            )
        wanted: set[str] = set()
        for kind in kinds:
            if kind not in PII_KINDS:
                raise ValueError(
                    f"unknown PII kind {kind!r}: valid kinds are {', '.join(PII_KINDS)}"
                )
            wanted.add(kind)
        self._kinds = tuple(k for k in PII_KINDS if k in wanted)
        self._order = tuple(k for k in _APPLY_ORDER if k in wanted)

    @classmethod
    def from_setting(cls, value: str | None) -> Redactor:
        """None or "all" -> every kind; "" or "none" -> nothing; else a comma-separated
        list of kinds, e.g. "email,phone" (case and spaces ignored)."""
        return cls(parse_pii_kinds(value))

    @property
    def kinds(self) -> tuple[str, ...]:
        return self._kinds

    def __repr__(self) -> str:
        return f"Redactor(kinds={self._kinds!r})"

    def redact(self, text: str) -> Redaction:
        found: dict[str, int] = {}
        for kind in self._order:
            placeholder = PLACEHOLDERS[kind]
            count = 0
            for rule in _RULES[kind]:
                text, n = _apply(rule, placeholder, text)
                count += n
            if count:
                found[kind] = count
        return Redaction(text=text, found={k: found[k] for k in PII_KINDS if k in found})


def _apply(rule: _Rule, placeholder: str, text: str) -> tuple[str, int]:
    """Replace each valid match; scanning goes on right after what was replaced (a check
    may redact only a prefix of its match) or one character after a rejected match.
    Matching runs on the folded text; replacements are made in the original."""
    folded, where = _fold(text)
    parts: list[str] = []
    count = 0
    done = pos = 0  # done: in `text`; pos: in `folded`
    while (match := rule.pattern.search(folded, pos)) is not None:
        start = match.start()
        keep = len(match.group(0)) if rule.check is None else rule.check(match.group(0))
        if not keep or (rule.glued and not _glue_ok(folded, start, start + keep)):
            pos = start + 1
            continue
        end = start + keep
        first, last = (start, end) if where is None else (where[start], where[end - 1] + 1)
        parts += (text[done:first], placeholder)
        done, pos = last, end
        count += 1
    if not count:
        return text, 0
    parts.append(text[done:])
    return "".join(parts), count
