from __future__ import annotations

import pytest

from bot.language import detect_language, is_cjk


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Where is my order?", "en"),
        ("café crème brûlée", "en"),
        ("我的订单在哪里？", "zh"),
        ("服务太差了", "zh"),
        ("ありがとうございます", "ja"),
        ("東京へ行きます", "ja"),  # kana among Han characters marks Japanese
        ("안녕하세요", "ko"),
        ("Привет, как дела", "ru"),
        ("iPhone 坏了", "zh"),  # two Han characters outweigh a six-letter brand name
        ("我的 iPhone 12 Pro Max 屏幕坏了", "zh"),
        ("the screen of my phone is broken 坏", "en"),
        ("12345", "und"),
        ("!!! ??? 123", "und"),
        ("", "und"),
        ("   ", "und"),
    ],
)
def test_detect_language(text, expected):
    assert detect_language(text) == expected


def test_is_cjk():
    assert is_cjk("zh") and is_cjk("ja")
    assert not is_cjk("en") and not is_cjk("ko") and not is_cjk("und")
