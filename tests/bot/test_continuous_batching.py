"""Continuous batching of greedy replies (bot.continuous_batching) on a tiny random chat model."""

from __future__ import annotations

import threading

import pytest

from bot.generation import GenerationError, GenerationParams, LocalGenerator
from fixtures import tiny

QUESTIONS = ["where is my order", "the parcel arrived broken", "can i get a refund", "thanks for the help",
             "my card was charged twice", "how do i change my address"]


def _messages(question: str) -> list[dict]:
    return [{"role": "system", "content": tiny.CHAT_SYSTEM}, {"role": "user", "content": question}]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tiny.build_chat_lm(tmp_path_factory.mktemp("tiny") / "chat-lm")


@pytest.fixture(scope="module")
def plain(model_path, tmp_path_factory):
    return LocalGenerator.load(str(model_path), tmp_path_factory.mktemp("cache"), context_tokens=256)


@pytest.fixture(scope="module")
def batched(model_path, tmp_path_factory):
    gen = LocalGenerator.load(str(model_path), tmp_path_factory.mktemp("cache"), context_tokens=256,
                              batch_requests=4)
    yield gen
    gen.close()


def test_a_batched_reply_is_the_plain_greedy_reply(plain, batched):
    params = GenerationParams(max_tokens=20)
    for q in QUESTIONS[:2]:
        expected = "".join(plain.stream(_messages(q), params))
        assert expected  # the tiny model writes something
        assert "".join(batched.stream(_messages(q), params)) == expected


def test_concurrent_replies_are_each_their_own(plain, batched):
    """More replies at once than the batch holds: each gets exactly its plain greedy reply."""
    params = GenerationParams(max_tokens=24)
    expected = {q: "".join(plain.stream(_messages(q), params)) for q in QUESTIONS}
    got: dict[str, str] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(QUESTIONS))

    def run(q: str) -> None:
        try:
            start.wait()
            got[q] = "".join(batched.stream(_messages(q), params))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(q,)) for q in QUESTIONS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert got == expected


def test_leaving_early_cancels_and_the_engine_keeps_serving(plain, batched):
    params = GenerationParams(max_tokens=40)
    stream = batched.stream(_messages(QUESTIONS[2]), params)
    next(stream)
    stream.close()
    assert not batched.batcher._streams  # nobody is still listening for it
    expected = "".join(plain.stream(_messages(QUESTIONS[3]), params))
    assert "".join(batched.stream(_messages(QUESTIONS[3]), params)) == expected


def test_stop_sequences_cut_a_batched_reply(plain, batched):
    text = "".join(plain.stream(_messages(QUESTIONS[0]), GenerationParams(max_tokens=20)))
    if len(text) < 4:
        pytest.skip("the tiny model's reply is too short to cut")
    stop = text[2:4]
    cut = "".join(batched.stream(_messages(QUESTIONS[0]), GenerationParams(max_tokens=20, stop=[stop])))
    assert cut == text[: text.find(stop)]


def test_a_reply_past_its_time_limit_fails_clearly(batched):
    with pytest.raises(GenerationError, match="exceeded"):
        "".join(batched.stream(_messages(QUESTIONS[1]), GenerationParams(max_tokens=40, timeout_s=1e-6)))


def test_sampled_replies_take_generate_beside_the_engine(plain, batched):
    """temperature > 0 goes through model.generate on the same module, which the engine
    leaves on an attention implementation generate can run."""
    assert batched.model.config._attn_implementation == "sdpa"
    engine_requests = batched.batcher._manager._request_counter
    text = "".join(batched.stream(_messages(QUESTIONS[4]), GenerationParams(max_tokens=8, temperature=0.9)))
    assert isinstance(text, str)
    assert batched.batcher._manager._request_counter == engine_requests  # not through the engine
    params = GenerationParams(max_tokens=12)  # and the engine still answers greedy replies right
    assert "".join(batched.stream(_messages(QUESTIONS[5]), params)) == "".join(plain.stream(_messages(QUESTIONS[5]), params))


def test_a_closed_batcher_refuses_new_replies(model_path, tmp_path):
    gen = LocalGenerator.load(str(model_path), tmp_path / "cache", context_tokens=256, batch_requests=2)
    gen.close()
    with pytest.raises(GenerationError, match="closed"):
        "".join(gen.stream(_messages(QUESTIONS[0]), GenerationParams(max_tokens=4)))
