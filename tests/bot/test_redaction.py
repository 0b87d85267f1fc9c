from __future__ import annotations

import dataclasses

import pytest

from bot.redaction import PII_KINDS, Redaction, Redactor

PLACEHOLDER = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "card": "[CARD]",
    "cn_id": "[ID_NUMBER]",
    "iban": "[IBAN]",
    "address": "[ADDRESS]",
}


# Independent reference checks, so the tests prove that a "valid" sample really is valid
# and a "must not be redacted" number really fails its check (not merely its shape).
def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    checksum = sum(digits[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in digits[-2::-2])
    return checksum % 10 == 0


def cn_id_checksum_ok(number: str) -> bool:
    number = number.replace(" ", "").upper()
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    total = sum(int(d) * w for d, w in zip(number[:17], weights))
    return "10X98765432"[total % 11] == number[17]


def iban_ok(iban: str) -> bool:
    compact = iban.replace(" ", "").upper()
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


# (kind, customer message, expected redacted message): each message holds one kind only.
POSITIVE = [
    # --- e-mail
    ("email", "Hi, please reply to john.doe+orders@mail.example.co.uk, thanks!",
     "Hi, please reply to [EMAIL], thanks!"),
    ("email", "我的邮箱是zhang.wei@example.com.cn谢谢", "我的邮箱是[EMAIL]谢谢"),
    ("email", "Send the invoice to Billing.Team@sub.corp-mail.example.org.",
     "Send the invoice to [EMAIL]."),
    ("email", "QQ邮箱 12345678@qq.com，收不到验证码", "QQ邮箱 [EMAIL]，收不到验证码"),
    ("email", "Two accounts: a@example.com and li_na-2@example.net (old)",
     "Two accounts: [EMAIL] and [EMAIL] (old)"),
    # --- phone
    ("phone", "Call me on +44 20 7946 0958 after 5pm", "Call me on [PHONE] after 5pm"),
    ("phone", "My US number is +1 (415) 555-0132.", "My US number is [PHONE]."),
    ("phone", "客服请打我电话+86 138 0013 8000", "客服请打我电话[PHONE]"),
    ("phone", "office (415) 555-0132, cell 415-555-0132, fax 415.555.0132",
     "office [PHONE], cell [PHONE], fax [PHONE]"),
    ("phone", "手机号13800138000，谢谢", "手机号[PHONE]，谢谢"),
    ("phone", "请联系138-0013-8000或138 0013 8000", "请联系[PHONE]或[PHONE]"),
    ("phone", "我的电话是0086 13912345678", "我的电话是[PHONE]"),
    ("phone", "座机010-12345678，找王经理", "座机[PHONE]，找王经理"),
    ("phone", "深圳办公室电话0755-1234567，工作日9点到6点", "深圳办公室电话[PHONE]，工作日9点到6点"),
    ("phone", "Fax: +49 30 1234567, tel +33 1 23 45 67 89", "Fax: [PHONE], tel [PHONE]"),
    # --- card
    ("card", "Hi, my card 4111 1111 1111 1111 was charged twice",
     "Hi, my card [CARD] was charged twice"),
    ("card", "Mastercard 5500-0000-0000-0004 expired", "Mastercard [CARD] expired"),
    ("card", "Amex 378282246310005 and also 3782 822463 10005",
     "Amex [CARD] and also [CARD]"),
    ("card", "银行卡号6222021234567890128被扣了两次款", "银行卡号[CARD]被扣了两次款"),
    ("card", "Discover 6011000990139424, exp 12/27", "Discover [CARD], exp 12/27"),
    ("card", "it was charged to 4111 1111 1111 1111 12 times",
     "it was charged to [CARD] 12 times"),
    # --- Chinese resident ID
    ("cn_id", "身份证号11010519491231002X，请核实", "身份证号[ID_NUMBER]，请核实"),
    ("cn_id", "My Chinese ID is 44030519900101123x", "My Chinese ID is [ID_NUMBER]"),
    ("cn_id", "身份证：310115198511070027", "身份证：[ID_NUMBER]"),
    ("cn_id", "证件号 110105 19491231 002X 已上传", "证件号 [ID_NUMBER] 已上传"),
    ("cn_id", "ID 110105200002290013 (born on a leap day)", "ID [ID_NUMBER] (born on a leap day)"),
    # --- IBAN
    ("iban", "Please refund to GB82 WEST 1234 5698 7654 32 ASAP", "Please refund to [IBAN] ASAP"),
    ("iban", "IBAN: DE89370400440532013000.", "IBAN: [IBAN]."),
    ("iban", "退款请打到 FR14 2004 1010 0505 0001 3M02 606 谢谢", "退款请打到 [IBAN] 谢谢"),
    ("iban", "NL91ABNA0417164300 or CH93 0076 2011 6238 5295 7", "[IBAN] or [IBAN]"),
    ("iban", "my iban is gb82 west 1234 5698 7654 32", "my iban is [IBAN]"),
    # --- address
    ("address", "I live at 221B Baker Street, London NW1 6XE.", "I live at [ADDRESS]."),
    ("address", "Ship it to 1600 Amphitheatre Parkway, Mountain View, CA 94043 please",
     "Ship it to [ADDRESS] please"),
    ("address", "New address: Apt 4B, 350 Fifth Avenue, New York, NY 10118",
     "New address: [ADDRESS]"),
    ("address", "Deliver to 10 Downing Street tomorrow", "Deliver to [ADDRESS] tomorrow"),
    ("address", "Returns go to 42 W 18th St, Suite 300 or 9 Elm Rd.",
     "Returns go to [ADDRESS] or [ADDRESS]."),
    ("address", "Please update it to:\n12 Main Street\nSpringfield, IL 62704\nThanks",
     "Please update it to:\n[ADDRESS]\nThanks"),
    ("address", "我住在北京市朝阳区建国路88号", "我住在[ADDRESS]"),
    ("address", "我住在河源市源城区大同路1号，到了打电话", "我住在[ADDRESS]，到了打电话"),
    ("address", "地址：上海市浦东新区世纪大道100号2栋302室，谢谢", "地址：[ADDRESS]，谢谢"),
    ("address", "寄到广东省深圳市南山区科技园路1号吧", "寄到[ADDRESS]吧"),
    ("address", "请送到北京市海淀区中关村大街27号院3号楼2单元501，谢谢", "请送到[ADDRESS]，谢谢"),
    ("address", "公司位于浙江省杭州市西湖区文三路90号", "公司位于[ADDRESS]"),
    ("address", "收货地址改成南京东路300号", "收货地址改成[ADDRESS]"),
    ("address", "麻烦北京市朝阳区建国路附近派送", "麻烦[ADDRESS]附近派送"),
]

# Customer messages that hold no PII and must come back unchanged.
NEGATIVE = [
    "Order #A1234567 hasn't arrived yet",
    "order 123456789 was cancelled",
    "订单号 2026112212345678 还没发货",
    "It cost $1,299.00 but I was charged ¥1299",
    "Delivered 2026-11-22, pickup 22/11/2026 14:30",
    "I bought 3 chargers and 12 cables in 2024, 2 x 8 GB",
    "Tracking code 1Z999AA10123456784, SF1234567890123",
    "The form shows 4111 1111 1111 1112, is that right?",
    "Reference 1234567812345678",
    "身份证号110105194912310021不对吧",
    "证件号110105194913310021",
    "IBAN GB83 WEST 1234 5698 7654 32 bounced",
    "Which Street is the store on? I live on Main Street.",
    "我的订单号是多少",
    "这条路很远",
    "请在5号前发货，2026年11月22日14:30前到，1299元3件",
    "上海市的南京路很热闹，在中山路口等你",
    "Call between 9:00-17:30, ext. 204",
    "version 2.3.1 released on 2026.11.22",
]

# Every kind once, with values that no other kind takes when it is switched off.
RAW = {
    "email": "jane@example.com",
    "phone": "13800138000",
    "card": "4111 1111 1111 1111",
    "cn_id": "11010519491231002X",
    "iban": "DE89370400440532013000",
    "address": "221B Baker Street",
}
ALL_KINDS_MESSAGE = (
    f"Email {RAW['email']}, phone {RAW['phone']}, card {RAW['card']}, "
    f"身份证{RAW['cn_id']}, IBAN {RAW['iban']}, address {RAW['address']}."
)


def _ids(cases):
    return [f"{c[0]}-{i}" for i, c in enumerate(cases)]


@pytest.mark.parametrize(("kind", "message", "expected"), POSITIVE, ids=_ids(POSITIVE))
def test_redacts_each_kind_and_keeps_everything_else(kind, message, expected):
    result = Redactor().redact(message)
    assert result.text == expected
    assert result.found == {kind: expected.count(PLACEHOLDER[kind])}
    assert result.changed


@pytest.mark.parametrize("message", NEGATIVE)
def test_leaves_text_without_pii_alone(message):
    result = Redactor().redact(message)
    assert result.text == message
    assert result.found == {}
    assert not result.changed


@pytest.mark.parametrize("number", [
    "4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005", "3782 822463 10005",
    "6222021234567890128", "6011000990139424",
])
def test_card_samples_pass_luhn(number):
    assert luhn_ok(number)


@pytest.mark.parametrize("number", [
    "2026112212345678", "4111 1111 1111 1112", "1234567812345678",
    "110105194912310021", "110105194913310021",
])
def test_negative_numbers_fail_luhn(number):
    # otherwise they would rightly be redacted as cards, and the negative tests prove nothing
    assert not luhn_ok(number)


@pytest.mark.parametrize(("number", "checksum_ok"), [
    ("11010519491231002X", True), ("44030519900101123x", True), ("310115198511070027", True),
    ("110105 19491231 002X", True), ("110105200002290013", True),
    ("110105194912310021", False),  # wrong check character
    ("110105194913310021", True),  # right check character, but month 13: the date must catch it
])
def test_cn_id_samples_have_the_intended_checksum(number, checksum_ok):
    assert cn_id_checksum_ok(number) is checksum_ok


@pytest.mark.parametrize(("iban", "valid"), [
    ("GB82 WEST 1234 5698 7654 32", True), ("DE89370400440532013000", True),
    ("FR14 2004 1010 0505 0001 3M02 606", True), ("NL91ABNA0417164300", True),
    ("CH93 0076 2011 6238 5295 7", True), ("GB83 WEST 1234 5698 7654 32", False),
])
def test_iban_samples_have_the_intended_checksum(iban, valid):
    assert iban_ok(iban) is valid


def test_an_id_with_a_valid_checksum_but_no_real_birth_date_is_kept():
    future = "110105209901010012"  # born 2099-01-01: checksum right, date in the future
    assert cn_id_checksum_ok(future) and not luhn_ok(future)
    assert Redactor().redact(f"ID {future}").text == f"ID {future}"


def test_an_id_that_also_passes_luhn_counts_as_an_id_not_a_card():
    number = "510107197803155674"
    assert cn_id_checksum_ok(number) and luhn_ok(number)
    result = Redactor().redact(f"身份证{number}")
    assert result.text == "身份证[ID_NUMBER]"
    assert result.found == {"cn_id": 1}


def test_an_email_made_of_a_phone_number_is_one_email():
    result = Redactor().redact("邮箱 13800138000@163.com")
    assert result.text == "邮箱 [EMAIL]"
    assert result.found == {"email": 1}


def test_counts_every_replacement_in_a_mixed_message():
    message = (
        "Hi, my card 4111 1111 1111 1111 was charged twice, call me on +44 20 7946 0958 "
        "or 415-555-0132, or email jane@example.com / jane.work@example.org. "
        "我的手机13800138000，地址上海市浦东新区世纪大道100号"
    )
    result = Redactor().redact(message)
    assert result.text == (
        "Hi, my card [CARD] was charged twice, call me on [PHONE] "
        "or [PHONE], or email [EMAIL] / [EMAIL]. "
        "我的手机[PHONE]，地址[ADDRESS]"
    )
    assert result.found == {"email": 2, "phone": 3, "card": 1, "address": 1}
    assert list(result.found) == ["email", "phone", "card", "address"]  # PII_KINDS order


def test_every_kind_in_one_message():
    result = Redactor().redact(ALL_KINDS_MESSAGE)
    assert result.text == (
        "Email [EMAIL], phone [PHONE], card [CARD], 身份证[ID_NUMBER], IBAN [IBAN], "
        "address [ADDRESS]."
    )
    assert result.found == {kind: 1 for kind in PII_KINDS}


@pytest.mark.parametrize("message", [m for _, m, _ in POSITIVE] + [ALL_KINDS_MESSAGE])
def test_redacting_twice_changes_nothing_more(message):
    redactor = Redactor()
    once = redactor.redact(message)
    twice = redactor.redact(once.text)
    assert once.changed
    assert twice.text == once.text
    assert twice.found == {}


def test_placeholders_themselves_are_left_alone():
    text = " ".join(PLACEHOLDER.values()) + " [EMAIL]@example.com"
    result = Redactor().redact(text)
    assert result.text == text and result.found == {}


@pytest.mark.parametrize("kind", PII_KINDS)
def test_a_redactor_for_one_kind_leaves_the_others_alone(kind):
    result = Redactor([kind]).redact(ALL_KINDS_MESSAGE)
    assert result.found == {kind: 1}
    assert RAW[kind] not in result.text and PLACEHOLDER[kind] in result.text
    for other, raw in RAW.items():
        if other != kind:
            assert raw in result.text, other


def test_a_redactor_for_some_kinds():
    result = Redactor(["phone", "email"]).redact(ALL_KINDS_MESSAGE)
    assert result.found == {"email": 1, "phone": 1}
    assert result.text.startswith("Email [EMAIL], phone [PHONE], card 4111 1111 1111 1111,")


def test_a_redactor_for_no_kinds_changes_nothing():
    result = Redactor(()).redact(ALL_KINDS_MESSAGE)
    assert result == Redaction(text=ALL_KINDS_MESSAGE, found={})
    assert not result.changed


def test_kinds_are_deduplicated_in_canonical_order():
    assert Redactor().kinds == PII_KINDS
    assert Redactor(["address", "email", "email"]).kinds == ("email", "address")
    assert Redactor([]).kinds == ()


@pytest.mark.parametrize(("value", "kinds"), [
    (None, PII_KINDS),
    ("all", PII_KINDS),
    (" ALL ", PII_KINDS),
    ("", ()),
    ("  ", ()),
    ("none", ()),
    ("None", ()),
    ("email,phone", ("email", "phone")),
    (" Phone , EMAIL ", ("email", "phone")),
    ("card,,iban,", ("card", "iban")),
    ("cn_id", ("cn_id",)),
    ("address,email,phone,card,cn_id,iban", PII_KINDS),
])
def test_from_setting(value, kinds):
    assert Redactor.from_setting(value).kinds == kinds


@pytest.mark.parametrize("value", ["email,bogus", "emails", "all,email", "ssn"])
def test_from_setting_refuses_unknown_kinds_naming_the_valid_ones(value):
    with pytest.raises(ValueError) as info:
        Redactor.from_setting(value)
    message = str(info.value)
    assert all(kind in message for kind in PII_KINDS)


def test_constructor_refuses_unknown_kinds_and_bare_strings():
    with pytest.raises(ValueError, match="'passport'.*email, phone, card, cn_id, iban, address"):
        Redactor(["email", "passport"])
    with pytest.raises(TypeError, match="from_setting"):
        Redactor("email")  # would otherwise be read as the kinds 'e', 'm', ...


def test_from_setting_none_redacts_nothing_and_all_redacts_everything():
    assert Redactor.from_setting("none").redact(ALL_KINDS_MESSAGE).text == ALL_KINDS_MESSAGE
    assert Redactor.from_setting(None).redact(ALL_KINDS_MESSAGE).found == {k: 1 for k in PII_KINDS}


def test_redaction_is_a_frozen_value():
    result = Redaction(text="x", found={})
    assert not result.changed
    assert Redaction(text="[EMAIL]", found={"email": 1}).changed
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.text = "y"  # type: ignore[misc]


def test_long_messages_stay_fast():
    import time

    # about 0.05 s; an ambiguous Chinese-address pattern once took 13 s on the 5000 区 alone
    text = "区" * 5000 + "北京市朝阳区" * 300 + "1 " * 3000 + "a." * 3000 + "4111 " * 1000
    start = time.perf_counter()
    Redactor().redact(text)
    assert time.perf_counter() - start < 3.0


# ---- issue 14: variants an outside probe used to slip PII past the redactor -------------
# The redactor must catch these on its own, without the NFKC/invisible-character clean-up
# that runs before it on new text (exports of older rows are redacted again without it).


def with_cn_check(first17: str) -> str:
    """A Chinese resident ID: 17 digits plus their ISO 7064 MOD 11-2 check character."""
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights)) % 11]


ID_A = with_cn_check("11010119900307771")  # born 1990-03-07
ID_B = with_cn_check("44030519850615123")  # born 1985-06-15
ID_C = with_cn_check("31011519780923456")  # born 1978-09-23


def dashed_id(number: str, sep: str = "-") -> str:
    return f"{number[:6]}{sep}{number[6:14]}{sep}{number[14:]}"


def to_fullwidth(text: str) -> str:
    """ASCII letters, digits and punctuation as their full-width forms (U+FF01-U+FF5E),
    spaces as ideographic spaces."""
    return "".join("\u3000" if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c
                   for c in text)


ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]  # ZWSP, ZWNJ, ZWJ, WJ, BOM
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068",
        "\u2069", "\u200e", "\u200f"]  # embeddings, overrides, isolates, LRM, RLM

ATTACK = [
    # --- full-width digits, letters, @, + and separators (typed with a Chinese IME)
    ("phone", "我的手机是１３８００１３８０００，谢谢", "我的手机是[PHONE]，谢谢"),
    ("phone", "call me at ＋８６ １３８ ００１３ ８０００ please", "call me at [PHONE] please"),
    ("phone", "英国电话：＋４４ ２０ ７９４６ ０９５８", "英国电话：[PHONE]"),
    ("phone", "请拨打＋８６－１３８－００１３－８０００", "请拨打[PHONE]"),
    ("phone", "电话138００138０００找我", "电话[PHONE]找我"),  # half and full mixed
    ("phone", "办公室（０１０）１２３４５６７８找王经理", "办公室[PHONE]找王经理"),
    ("card", "卡号４１１１　１１１１　１１１１　１１１１被盗刷了", "卡号[CARD]被盗刷了"),
    ("card", "my card is " + to_fullwidth("5555555555554444"), "my card is [CARD]"),
    ("cn_id", "身份证号" + to_fullwidth("11010519491231002X") + "，请核实", "身份证号[ID_NUMBER]，请核实"),
    ("email", "邮箱 zhang.wei＠example.com 谢谢", "邮箱 [EMAIL] 谢谢"),
    ("email", "mail me: " + to_fullwidth("john@example.com"), "mail me: [EMAIL]"),
    ("email", "客服邮箱：support＠shop．example．cn", "客服邮箱：[EMAIL]"),
    ("iban", "IBAN " + to_fullwidth("GB82 WEST 1234 5698 7654 32"), "IBAN [IBAN]"),
    ("phone", "mobile \u0661\u0663\u0668\u0660\u0660\u0661\u0663\u0668\u0660\u0660\u0660",
     "mobile [PHONE]"),  # Arabic-Indic digits
    # --- numbers glued to letters or to Chinese
    ("phone", "tel13800138000ok", "tel[PHONE]ok"),
    ("phone", "Tel13800138000 thanks", "Tel[PHONE] thanks"),
    ("phone", "电话13800138000谢谢", "电话[PHONE]谢谢"),
    ("phone", "whatsapp+8613800138000", "whatsapp[PHONE]"),
    ("phone", "cell415-555-0132asap", "cell[PHONE]asap"),
    ("phone", "TEL13912345678", "TEL[PHONE]"),  # an upper-case label word
    ("card", "card4111111111111111exp 12/27", "card[CARD]exp 12/27"),
    ("card", "visa4111 1111 1111 1111thx", "visa[CARD]thx"),
    ("cn_id", f"myid{ID_A}thanks", "myid[ID_NUMBER]thanks"),
    ("cn_id", f"身份证{dashed_id(ID_B)}号码", "身份证[ID_NUMBER]号码"),
    # --- dot separators (415.555.0132 already worked and must keep working)
    ("phone", "手机138.0013.8000", "手机[PHONE]"),
    ("phone", "my cell is 138.0013.8000.", "my cell is [PHONE]."),
    ("phone", "fax 415.555.0132", "fax [PHONE]"),
    ("phone", "+44.20.7946.0958 (UK)", "[PHONE] (UK)"),
    ("phone", "北京座机010.12345678", "北京座机[PHONE]"),
    ("card", "4111.1111.1111.1111 was declined", "[CARD] was declined"),
    # --- mixed card separators, odd groupings
    ("card", "4111-1111 1111-1111", "[CARD]"),
    ("card", "my card 4111 1111-1111-1111 was declined", "my card [CARD] was declined"),
    ("card", "Amex 3782-822463 10005", "Amex [CARD]"),
    ("card", "amex 3714 496353-98431 please refund", "amex [CARD] please refund"),
    ("card", "Diners 3056 930902 5904", "Diners [CARD]"),
    ("card", "银行卡6222 0212-3456 7890 128扣款两次", "银行卡[CARD]扣款两次"),
    ("card", "JCB 3530\u00a01113\u00a03330\u00a00000", "JCB [CARD]"),  # no-break spaces
    # --- international prefixes written with 00, and the (0) trunk prefix
    ("phone", "ring 0044 20 7946 0958 tomorrow", "ring [PHONE] tomorrow"),
    ("phone", "0044-20-7946-0958", "[PHONE]"),
    ("phone", "英国号码 0044 20 7946 0958", "英国号码 [PHONE]"),
    ("phone", "我的电话是0086 138 0013 8000", "我的电话是[PHONE]"),
    ("phone", "from Spain call 001 415 555 0132", "from Spain call [PHONE]"),
    ("phone", "London +44 (0)20 7946 0958", "London [PHONE]"),
    ("phone", "call 415–555–0132 or 415—555—0132", "call [PHONE] or [PHONE]"),  # en/em dashes
    # --- Chinese IDs with dashes, dots, spaces
    ("cn_id", f"身份证号{dashed_id(ID_A)}", "身份证号[ID_NUMBER]"),
    ("cn_id", f"ID: {dashed_id(ID_B, ' ')}, thanks", "ID: [ID_NUMBER], thanks"),
    ("cn_id", f"证件号 {dashed_id(ID_C, '.')}", "证件号 [ID_NUMBER]"),
    ("cn_id", f"身份证{dashed_id(ID_A, '－')}，请核实", "身份证[ID_NUMBER]，请核实"),
    # --- IBANs with dashes
    ("iban", "IBAN GB82-WEST-1234-5698-7654-32", "IBAN [IBAN]"),
    ("iban", "退款账户DE89-3704-0044-0532-0130-00谢谢", "退款账户[IBAN]谢谢"),
    ("iban", "FR14-2004-1010-0505-0001-3M02-606 please", "[IBAN] please"),
    # --- zero-width characters inside numbers and e-mails (the whole span goes)
    ("phone", "138\u200b0013\u200b8000", "[PHONE]"),
    ("phone", "手机1\u200c3\u200d8\u20600\ufeff0138000", "手机[PHONE]"),
    ("card", "card 4111\u200c1111\u200d1111\u20601111 ok", "card [CARD] ok"),
    ("card", "4111\u00ad1111\u00ad1111\u00ad1111", "[CARD]"),  # soft hyphens
    ("phone", "+44\ufeff20 7946 0958", "[PHONE]"),
    ("cn_id", "身份证11010519491231\u200b002X", "身份证[ID_NUMBER]"),
    ("email", "jane\u200b@example.com", "[EMAIL]"),
    ("email", "write to jane@exa\u200dmple.com today", "write to [EMAIL] today"),
    ("iban", "GB82\u200bWEST1234\u200b5698765432", "[IBAN]"),
    # --- bidi controls inside numbers and e-mails (those around a number stay: not PII)
    ("phone", "手机138\u202e0013\u202c8000", "手机[PHONE]"),
    ("phone", "我的手机\u202e13800138000\u202c", "我的手机\u202e[PHONE]\u202c"),
    ("phone", "\u2066+44 20\u2069 7946 0958", "\u2066[PHONE]"),
    ("email", "john\u202e@\u202cexample.com", "[EMAIL]"),
    ("email", "mail: j\u200fo\u200eh\u2067n@example.com\u2069", "mail: [EMAIL]\u2069"),
    ("card", "4111 \u202d1111\u202c 1111 11\u202e11", "[CARD]"),
]

# Look-alikes that hold no PII, through the same folding paths: they must come back unchanged.
LOOK_ALIKES = [
    "订单号LS20481937还没到",
    "Order LS20481937 shipped on Monday",
    "订单号ＬＳ２０４８１９３７",  # full-width order number
    "order no. LS13800138000",  # an upper-case code, even with a mobile-shaped tail
    "SF9612345678901 is my tracking number",  # Luhn-valid digits behind a carrier code
    "JD0012345678901 还在路上",
    "International post EA123456789CN",
    "UPS 1Z999AA10123456784",
    "价格￥１２９９．００，运费１０元",
    "It was $1,299.00 / €1.299,00",
    "下单时间２０２６年１１月２２日１４：３０",
    "Delivered 2026.11.22 at 14.30",
    "timestamp 2026-11-22T14:30:00Z",
    "I need 138 units, 13 packs and 8000 sheets",
    "数量：１３８件，单价８０００元",
    "invoice 0012-3456, room 0044",
    "server 192.168.100.200 is down",
    "The form shows 4111-1111 1111 1112, is that right?",  # fails Luhn
    f"证件号{dashed_id('110105194912310021')}",  # wrong check character
    "IBAN GB83-WEST-1234-5698-7654-32 bounced",  # fails mod 97
    "error id 9f8e13912345678ab2",  # hex digest
    "request 550e8400-e29b-41d4-a716-446655440000",
    "Call between 09:00-17:30, ext. 204, room 1305",
    "订单LS2048\u200b1937",  # an invisible character in an order number
    "Order 1380013800 is late",  # bare 10 digits
    "iPhone13 Pro, 2 x 128GB",
    "codes:\n4111\n1111\n1111\n1111",  # one code a line: never joined into a card
    "card ending in 1111, expires 12/27",
    "尾号1111的卡",
    "app version 13.8.0013",
    "\u202eabc\u202c 12345",
]


def _attack_ids(cases):
    return [f"{c[0]}-{i}" for i, c in enumerate(cases)]


@pytest.mark.parametrize(("kind", "message", "expected"), ATTACK, ids=_attack_ids(ATTACK))
def test_attack_variants_are_redacted(kind, message, expected):
    result = Redactor().redact(message)
    assert result.text == expected
    assert result.found == {kind: expected.count(PLACEHOLDER[kind])}


@pytest.mark.parametrize(("kind", "message", "expected"), ATTACK, ids=_attack_ids(ATTACK))
def test_attack_variants_stay_redacted_when_redacted_again(kind, message, expected):
    once = Redactor().redact(message).text
    assert Redactor().redact(once) == Redaction(text=once, found={})


@pytest.mark.parametrize("message", LOOK_ALIKES)
def test_look_alikes_are_left_alone(message):
    result = Redactor().redact(message)
    assert result.text == message
    assert result.found == {}


def test_the_attack_lists_are_big_enough_and_cover_every_trick():
    assert len(ATTACK) >= 50 and len(LOOK_ALIKES) >= 20
    messages = "".join(m for _, m, _ in ATTACK)
    for char in ZERO_WIDTH + ["\u202e", "\u202c", "\u2066", "\u2069", "＠", "＋", "１"]:
        assert char in messages, repr(char)


@pytest.mark.parametrize("number", [
    "5555555555554444", "3782822463 10005", "371449635398431", "30569309025904",
    "3530111333300000", "9612345678901",
])
def test_new_card_samples_pass_luhn(number):
    assert luhn_ok(number)


@pytest.mark.parametrize("number", ["4111111111111112", "1380013800", "13800138000", "10123456784"])
def test_new_negative_numbers_fail_luhn(number):
    assert not luhn_ok(number)


def test_new_id_samples_have_valid_checksums_and_the_negative_one_does_not():
    for number in (ID_A, ID_B, ID_C):
        assert cn_id_checksum_ok(number)
    assert not cn_id_checksum_ok("110105194912310021")


@pytest.mark.parametrize(("iban", "valid"), [
    ("GB82WEST12345698765432", True), ("DE89370400440532013000", True),
    ("FR1420041010050500013M02606", True), ("GB83WEST12345698765432", False),
])
def test_new_iban_samples_have_the_intended_checksum(iban, valid):
    assert iban_ok(iban) is valid


@pytest.mark.parametrize("char", ZERO_WIDTH + BIDI)
def test_any_invisible_character_inside_a_number_is_redacted_with_it(char):
    message = f"手机138{char}0013{char}8000，卡号4111{char}1111 1111 1111"
    result = Redactor().redact(message)
    assert result.text == "手机[PHONE]，卡号[CARD]"
    assert result.found == {"phone": 1, "card": 1}


def test_a_number_split_over_lines_is_not_joined():
    # Decision: a line break ends a number. Joining lines would turn lists of short codes
    # (one a line, like LOOK_ALIKES' "codes:") into cards and phone numbers; the chat input
    # is one line, so a number broken over lines is a paste of several things.
    message = "call 138 0013\n8000"
    assert Redactor().redact(message).text == message


def test_lone_surrogates_and_odd_characters_do_not_break_redaction():
    message = "x\ud800 13800138000 \U000e0041\ufe0f 𝟏𝟑𝟖𝟎𝟎𝟏𝟑𝟖𝟎𝟎𝟎"
    result = Redactor().redact(message)
    assert result.text == "x\ud800 [PHONE] \U000e0041\ufe0f [PHONE]"
    assert result.found == {"phone": 2}
