from __future__ import annotations

import pytest

from core.errors import InputError, PayloadTooLargeError
from bot.guard import check_texts


def test_accepts_texts_within_the_limits():
    check_texts(["a", "b" * 10], max_texts=2, max_chars=10)  # no exception


@pytest.mark.parametrize(("texts", "error", "needle"), [
    ([], InputError, "at least one"),
    (["ok", "  \n"], InputError, "texts[1] is empty"),
    (["a", "b", "c"], PayloadTooLargeError, "3 texts in one call; the limit is 2"),
    (["x" * 11], PayloadTooLargeError, "texts[0] has 11 characters; the limit is 10"),
])
def test_refuses_with_a_message_that_says_what_to_change(texts, error, needle):
    with pytest.raises(error) as info:
        check_texts(texts, max_texts=2, max_chars=10)
    assert needle in str(info.value)
