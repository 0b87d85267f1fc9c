"""The local generator on a tiny random chat model (tests/fixtures/tiny.py)."""

from __future__ import annotations

import pytest

from core.errors import ModelLoadError
from bot.generation import GenerationParams, LocalGenerator
from fixtures import tiny


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    path = tiny.build_chat_lm(tmp_path_factory.mktemp("tiny") / "chat-lm")
    return LocalGenerator.load(str(path), tmp_path_factory.mktemp("cache"), context_tokens=256)


MESSAGES = [{"role": "system", "content": "you are the support of the shop"},
            {"role": "user", "content": "where is my order"}]


def test_streams_at_most_max_tokens(generator):
    pieces = list(generator.stream(MESSAGES, GenerationParams(max_tokens=5)))
    text = "".join(pieces)
    assert pieces and 1 <= len(generator.tokenizer(text, add_special_tokens=False)["input_ids"]) <= 6


def test_greedy_is_deterministic_and_stops_cut_the_text(generator):
    params = GenerationParams(max_tokens=12)
    text = "".join(generator.stream(MESSAGES, params))
    assert text == "".join(generator.stream(MESSAGES, params))
    if len(text) > 3:
        stop = text[2:4]
        cut = "".join(generator.stream(MESSAGES, GenerationParams(max_tokens=12, stop=[stop])))
        assert cut == text[: text.find(stop)]


def test_counts_prompt_tokens_with_the_chat_template(generator):
    n = generator.count_tokens(MESSAGES)
    ids = generator.tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert n == len(ids) > 5


def test_the_reply_budget_shrinks_near_the_window(generator):
    long = [MESSAGES[0], {"role": "user", "content": "where is my order " * 22}]
    assert generator.count_tokens(long) < generator.context_tokens
    text = "".join(generator.stream(long, GenerationParams(max_tokens=500)))
    total = generator.count_tokens(long) + len(generator.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert total <= generator.context_tokens + 1


def test_a_model_without_a_chat_template_is_refused(tmp_path):
    path = tiny.build_causal_lm(tmp_path / "plain-lm")
    with pytest.raises(ModelLoadError, match="no chat template"):
        LocalGenerator.load(str(path), tmp_path / "cache")
