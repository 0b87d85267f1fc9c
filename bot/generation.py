"""Generation backends behind one interface: a local transformers causal LM, or any
OpenAI-compatible server (vLLM, TGI, Ollama, another supportbot) by base URL + key.

Both stream text pieces, honour stop sequences, a token limit and a time limit, and
report how many tokens a list of messages takes so the caller can keep the context
inside the window.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Protocol

from core.errors import ModelLoadError, SupportbotError

log = logging.getLogger(__name__)


class GenerationError(SupportbotError):
    """The backend failed or timed out; the dialogue falls back to a retrieval answer."""


@dataclass
class GenerationParams:
    max_tokens: int = 200
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    timeout_s: float = 60.0  # wall-clock limit for the whole reply


class Generator(Protocol):
    name: str
    context_tokens: int  # prompt + reply must fit in this many tokens

    def count_tokens(self, messages: list[dict]) -> int: ...

    def stream(self, messages: list[dict], params: GenerationParams) -> Iterator[str]: ...


def apply_stops(pieces: Iterable[str], stops: list[str]) -> Iterator[str]:
    """Pass text pieces through, ending before the first stop sequence. Text that could be
    the start of a stop sequence is held back until it is known not to be one."""
    stops = [s for s in stops if s]
    if not stops:
        yield from pieces
        return
    hold = max(len(s) for s in stops) - 1
    buffer = ""
    for piece in pieces:
        buffer += piece
        cut = min((i for i in (buffer.find(s) for s in stops) if i >= 0), default=-1)
        if cut >= 0:
            if buffer[:cut]:
                yield buffer[:cut]
            return
        if len(buffer) > hold:
            yield buffer[: len(buffer) - hold]
            buffer = buffer[len(buffer) - hold:]
    if buffer:
        yield buffer


class LocalGenerator:
    """A transformers causal LM with its chat template (optionally a supportbot chat
    adapter, merged at load).

    With `batch_requests` > 1, greedy replies written at the same time are decoded
    together (bot.continuous_batching); otherwise, and for sampled replies, one
    `model.generate` runs at a time."""

    def __init__(self, name: str, tokenizer, model, *, context_tokens: int = 2048, batch_requests: int = 1):
        self.name, self.tokenizer, self.model = name, tokenizer, model
        self.context_tokens = min(context_tokens, getattr(model.config, "max_position_embeddings", context_tokens))
        self._lock = threading.Lock()
        self.batcher = None
        if batch_requests > 1:
            from bot.continuous_batching import ContinuousBatcher

            self.batcher = ContinuousBatcher(model, tokenizer, context_tokens=self.context_tokens,
                                             max_requests=batch_requests)

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()

    @classmethod
    def load(cls, ref: str, cache_dir: Path, *, context_tokens: int = 2048, batch_requests: int = 1) -> "LocalGenerator":
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from bot.classifier import quiet_transformers
        from core.adapter_artifact import read_meta
        from core.model_refs import resolve

        resolved = resolve(ref, cache_dir)
        adapter = None
        base = resolved
        if resolved.adapter:
            meta = read_meta(resolved.path, task="chat")
            adapter = resolved.path
            base = resolve(meta["base"], cache_dir)
        try:
            tok_source = adapter if adapter and Path(adapter, "tokenizer_config.json").is_file() else base.path
            tokenizer = AutoTokenizer.from_pretrained(tok_source, local_files_only=base.local)
            with quiet_transformers():
                model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32,
                                                             local_files_only=base.local)
                if adapter:
                    from peft import PeftModel

                    model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load chat model {ref!r}: {exc}") from exc
        if tokenizer.chat_template is None:
            raise ModelLoadError(f"chat model {ref!r} has no chat template: use an instruct/chat model")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return cls(ref, tokenizer, model.eval(), context_tokens=context_tokens, batch_requests=batch_requests)

    def encode(self, messages: list[dict]):
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                  return_dict=True)

    def count_tokens(self, messages: list[dict]) -> int:
        return int(self.encode(messages)["input_ids"].shape[1])

    def stream(self, messages: list[dict], params: GenerationParams) -> Iterator[str]:
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        enc = self.encode(messages)
        budget = max(1, min(params.max_tokens, self.context_tokens - enc["input_ids"].shape[1]))
        if self.batcher is not None and params.temperature == 0:
            yield from self._stream_batched(enc["input_ids"][0].tolist(), budget, params)
            return
        cancel = threading.Event()

        class _Cancel(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return cancel.is_set()

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True,
                                        timeout=params.timeout_s + 5)
        kwargs = dict(**enc, max_new_tokens=budget, streamer=streamer, max_time=params.timeout_s,
                      stopping_criteria=StoppingCriteriaList([_Cancel()]), pad_token_id=self.tokenizer.pad_token_id)
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        failure: list[BaseException] = []

        def work():
            import torch

            try:
                with self._lock, torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as exc:  # noqa: BLE001 - reported to the consumer below
                failure.append(exc)
                streamer.end()

        thread = threading.Thread(target=work, name="generate", daemon=True)
        thread.start()
        try:
            for piece in apply_stops(_pieces(streamer), params.stop):
                yield piece
        except Exception as exc:  # the streamer's queue timed out: the model is stuck
            raise GenerationError(f"local generation failed: {exc}") from exc
        finally:
            cancel.set()  # stop early if the consumer went away or a stop sequence matched
        thread.join(timeout=params.timeout_s + 5)
        if failure:
            raise GenerationError(f"local generation failed: {failure[0]}") from failure[0]


    def _stream_batched(self, input_ids: list[int], budget: int, params: GenerationParams) -> Iterator[str]:
        from bot.continuous_batching import BatchingError

        pieces = self.batcher.stream(input_ids, max_new_tokens=budget, timeout_s=params.timeout_s)
        try:
            yield from apply_stops(pieces, params.stop)
        except BatchingError as exc:
            raise GenerationError(str(exc)) from exc
        finally:
            pieces.close()  # cancels the reply if it is still being written


def _pieces(streamer) -> Iterator[str]:
    for piece in streamer:
        if piece:
            yield piece


class RemoteGenerator:
    """Any OpenAI-compatible `/v1/chat/completions` server, through the official client."""

    CHARS_PER_TOKEN = 3.0  # a conservative estimate: we cannot see the server's tokenizer

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, context_tokens: int = 4096,
                 timeout_s: float = 60.0):
        from openai import OpenAI

        self.name = f"{model}@{base_url}"
        self.model = model
        self.context_tokens = context_tokens
        # No retries: a retry after a timeout would double the time limit; the dialogue's
        # fallback (the article's own answer) is the retry.
        self.client = OpenAI(base_url=base_url, api_key=api_key or "none", timeout=timeout_s, max_retries=0)

    def count_tokens(self, messages: list[dict]) -> int:
        return int(sum(len(m.get("content") or "") + 8 for m in messages) / self.CHARS_PER_TOKEN) + 1

    def stream(self, messages: list[dict], params: GenerationParams) -> Iterator[str]:
        import openai

        deadline = time.monotonic() + params.timeout_s
        kwargs = dict(model=self.model, messages=messages, stream=True, max_tokens=params.max_tokens,
                      temperature=params.temperature, top_p=params.top_p, timeout=params.timeout_s)
        if params.stop:
            kwargs["stop"] = params.stop[:4]  # OpenAI's limit
        try:
            response = self.client.chat.completions.create(**kwargs)
            def pieces():
                for chunk in response:
                    if time.monotonic() > deadline:
                        raise GenerationError(f"remote generation exceeded {params.timeout_s:.0f}s")
                    if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content
            yield from apply_stops(pieces(), params.stop)
        except openai.OpenAIError as exc:
            raise GenerationError(f"remote generation failed ({self.name}): {exc}") from exc
