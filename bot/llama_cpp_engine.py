"""The local chat model on llama.cpp (llama-cpp-python): the `Generator` for GGUF models.

A chat model reference is served here when it is a GGUF file, a packaged GGUF model
(smollm2-135m), or a supportbot chat adapter (LoRA) on one: the adapter is merged into a
GGUF copy of its base once (bot.gguf_merge, cached per adapter weights). The prompt is
the model's chat template (the adapter's own, else the GGUF file's) rendered the way
transformers renders it, so both engines read the same tokens. Replies are decoded
together by bot.llama_cpp_batching.

Which engine serves the chat model is `choose_engine` (SUPPORTBOT_CHAT_ENGINE): auto takes
llama.cpp when llama_cpp imports and the model is GGUF-backed, else PyTorch
(bot.generation.LocalGenerator). `llama_cpp` is imported lazily: without it, asking for
this engine says how to install it.
"""

from __future__ import annotations

import codecs
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from bot.generation import GenerationError, GenerationParams, apply_stops
from core.errors import ModelLoadError

log = logging.getLogger(__name__)

INSTALL = ("install llama-cpp-python: CMAKE_ARGS=\"-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=ON "
           "-DGGML_AMX_INT8=OFF\" pip install 'supportbot[llama-cpp]' (make setup does this; a native build "
           "crashes on some AMX CPUs), or set SUPPORTBOT_CHAT_ENGINE=torch")
# How the merged matrices of a chat adapter are stored (bot.gguf_merge). q8_0: its greedy
# replies match PyTorch fp32's (f32 matches exactly; checked on three demo-KB turns), while
# the 4-bit types change what the small model writes (q4_0 reads prompts ~10% and decodes
# ~30% faster, README "Performance"); the adapter was evaluated in fp32.
MERGED_TENSOR_TYPE = "q8_0"


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


@dataclass(frozen=True)
class GGUFSource:
    gguf: Path  # the base model's GGUF file
    adapter: Path | None  # a LoRA chat adapter to merge into it
    template_dir: Path | None  # where the chat template comes from (None: the GGUF file's)


def gguf_source(ref: str) -> GGUFSource | None:
    """Where the GGUF weights of chat model `ref` are, or None when it has none (a plain
    transformers directory or hub model, a full fine-tune): those are PyTorch's."""
    from core.adapter_artifact import is_adapter_dir, read_meta
    from core.model_refs import PACKAGED, SHIPPED, SHIPPED_DIR, _module_dir, packaged_name

    ref = (ref or "").strip()
    path = Path(ref).expanduser()
    if ref.endswith(".gguf") and path.is_file():
        return GGUFSource(path, None, None)
    adapter = None
    if ref in SHIPPED:
        adapter = SHIPPED_DIR / ref
    elif path.is_dir() and is_adapter_dir(path):
        adapter = path.resolve()
    base = ref
    if adapter is not None:
        if not (adapter / "adapter_config.json").is_file():
            return None  # a full fine-tune: transformers weights
        base = str(read_meta(adapter, task="chat")["base"])
    name = base if base in PACKAGED else packaged_name(base)
    if name is None or PACKAGED[name].kind != "gguf" or not PACKAGED[name].relpath:
        return None
    spec = PACKAGED[name]
    if importlib.util.find_spec(spec.module) is None:
        return None
    gguf = _module_dir(spec) / spec.relpath
    return GGUFSource(gguf, adapter, adapter) if gguf.is_file() else None


def choose_engine(setting: str, ref: str, *, backend: str = "local") -> tuple[str, str]:
    """("llama_cpp" | "torch", why) for the chat model `ref` under SUPPORTBOT_CHAT_ENGINE."""
    if backend != "local":
        return "torch", "generation is remote"
    if setting == "torch":
        return "torch", "SUPPORTBOT_CHAT_ENGINE=torch"
    source = gguf_source(ref)
    if setting == "llama_cpp":
        if source is None:
            raise ModelLoadError(f"SUPPORTBOT_CHAT_ENGINE=llama_cpp needs a GGUF chat model (a .gguf file, a packaged "
                                 f"GGUF model or a LoRA chat adapter on one); {ref!r} is not: use "
                                 f"SUPPORTBOT_CHAT_ENGINE=torch")
        return "llama_cpp", "SUPPORTBOT_CHAT_ENGINE=llama_cpp"
    if source is None:
        return "torch", f"{ref} has no GGUF weights"
    if not llama_cpp_available():
        return "torch", "llama_cpp is not installed (" + INSTALL + ")"
    return "llama_cpp", f"{ref} is GGUF-backed and llama_cpp is installed"


def _chat_template(template_dir: Path | None, batcher) -> str | None:
    if template_dir is not None:
        jinja = template_dir / "chat_template.jinja"
        if jinja.is_file():
            return jinja.read_text(encoding="utf-8")
        config = template_dir / "tokenizer_config.json"
        if config.is_file():
            import json

            template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
            if isinstance(template, str):
                return template
    return batcher.meta("tokenizer.chat_template")


class VocabTokenizer:
    """The model's vocabulary with the call shape of a transformers tokenizer, for the
    callers that count a reply's tokens that way (bot/api/routes/chat.py usage and
    finish_reason)."""

    def __init__(self, batcher):
        self.batcher = batcher

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": self.batcher.tokenize(text, parse_special=add_special_tokens)}


class LlamaCppGenerator:
    """A GGUF chat model on llama.cpp: streaming, stop sequences, token and time limits,
    cancellation when the reader leaves, `slots` replies decoded together."""

    def __init__(self, name: str, batcher, template: str):
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        self.name, self.batcher = name, batcher
        self.tokenizer = VocabTokenizer(batcher)
        self.context_tokens = batcher.context_tokens
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)  # as transformers renders

        def raise_exception(message):
            raise ValueError(message)

        env.globals["raise_exception"] = raise_exception
        self._template = env.from_string(template)
        self._specials = {"bos_token": batcher.token_text(batcher.bos), "eos_token": batcher.token_text(batcher.eos)}

    @classmethod
    def load(cls, ref: str, cache_dir: Path, *, context_tokens: int = 2048, slots: int = 4,
             threads: int | None = None, tensor_type: str = MERGED_TENSOR_TYPE) -> "LlamaCppGenerator":
        if not llama_cpp_available():
            raise ModelLoadError(f"the llama.cpp chat engine needs the llama_cpp package: {INSTALL}")
        from bot.gguf_merge import merged_gguf
        from bot.llama_cpp_batching import LlamaBatcher, LlamaBatchingError

        source = gguf_source(ref)
        if source is None:
            raise ModelLoadError(f"chat model {ref!r} has no GGUF weights for llama.cpp: use SUPPORTBOT_CHAT_ENGINE=torch")
        path = source.gguf
        try:
            if source.adapter is not None or tensor_type not in ("same", ""):
                path = merged_gguf(source.gguf, source.adapter, Path(cache_dir) / "llama_cpp", tensor_type=tensor_type)
            batcher = LlamaBatcher(str(path), slots=slots, context_tokens=context_tokens,
                                   threads=threads or default_threads())
        except (OSError, ValueError, LlamaBatchingError) as exc:
            raise ModelLoadError(f"cannot load chat model {ref!r} on llama.cpp: {exc}") from exc
        template = _chat_template(source.template_dir, batcher)
        if not template:
            batcher.close()
            raise ModelLoadError(f"chat model {ref!r} has no chat template: use an instruct/chat model")
        log.info("chat model %s on llama.cpp: %s (%d replies at once, %d threads)", ref, path.name, slots,
                 threads or default_threads())
        return cls(ref, batcher, template)

    def close(self) -> None:
        self.batcher.close()

    def encode(self, messages: list[dict]) -> list[int]:
        text = self._template.render(messages=messages, add_generation_prompt=True, **self._specials)
        return self.batcher.tokenize(text)

    def count_tokens(self, messages: list[dict]) -> int:
        return len(self.encode(messages))

    def stream(self, messages: list[dict], params: GenerationParams) -> Iterator[str]:
        from bot.llama_cpp_batching import LlamaBatchingError

        prompt = self.encode(messages)
        try:
            reply = self.batcher.submit(prompt, max_new_tokens=params.max_tokens, timeout_s=params.timeout_s,
                                        temperature=params.temperature, top_p=params.top_p)
        except LlamaBatchingError as exc:
            raise GenerationError(str(exc)) from exc
        tokens = self.batcher.tokens(reply, params.timeout_s)
        try:
            yield from apply_stops(self._text(tokens), params.stop)
        except LlamaBatchingError as exc:
            raise GenerationError(str(exc)) from exc
        finally:
            tokens.close()  # cancels the reply if it is still being written

    def _text(self, tokens) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # holds half a character back
        for token in tokens:
            piece = decoder.decode(self.batcher.piece(token))
            if piece:
                yield piece
        rest = decoder.decode(b"", final=True)
        if rest:
            yield rest


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """llama.cpp's threads: half the cores, as llama-cpp-python's own default. llama.cpp's
    threads meet at a spinning OpenMP barrier after every operation: when another thread
    of the process (HTTP, the classifiers' PyTorch, which shares the same libgomp) or of
    the machine takes a core, the barrier waits a whole time slice. Measured on the 2-core
    reference machine under load: 2 threads decoded at 1-25 tokens/s, 1 thread at 50-66."""
    return max(1, _cores() // 2)

