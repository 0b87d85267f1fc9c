"""Continuous batching on llama.cpp: the replies being written share each decoding step.

One llama.cpp context holds `slots` sequences (each its own window of KV cache). A
scheduler thread owns the context: every step it puts into one `llama_decode` batch the
next token of each reply being written and, with the room left (`n_batch` tokens), a
chunk of a new reply's prompt; then it picks each reply's next token from its logits
(greedy, or temperature / top-p sampling) and hands it to that reply's reader. A reply
joins at the next step and leaves when it ends; its sequence is wiped and the slot is
free again. On a CPU a step over four replies costs little more than a step over one
(the weights are read once per step), which is where the throughput comes from.

llama.cpp's calls go through ctypes and release the GIL, so the HTTP threads run while
the scheduler decodes. Readers leaving early, or running out of time, cancel their reply:
it is dropped before the next step.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

_DONE = object()  # the reply ended (end-of-generation token or token limit)


_LOG_CALLBACK = None
# ggml_log_level: 1 debug, 2 info (the loading details: debug here), 3 warn, 4 error, 5 continuation
_LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}


def _route_logs(lc) -> None:
    """llama.cpp's log lines go to the `llama_cpp` logger (its loading chatter at debug)
    instead of straight to stderr."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return
    logger = logging.getLogger("llama_cpp")
    last = [logging.DEBUG]

    @lc.llama_log_callback
    def callback(level, text, user_data):
        last[0] = _LEVELS.get(level, last[0])
        if logger.isEnabledFor(last[0]):
            logger.log(last[0], "%s", text.decode("utf-8", errors="replace").rstrip())

    _LOG_CALLBACK = callback  # kept alive: llama.cpp holds the pointer
    lc.llama_log_set(callback, ctypes.c_void_p(0))


class LlamaBatchingError(RuntimeError):
    """The engine failed, or a reply ran past its time limit."""


@dataclass(eq=False)
class _Reply:
    prompt: list[int]
    max_new_tokens: int
    temperature: float
    top_p: float
    deadline: float
    out: queue.Queue = field(default_factory=queue.Queue)
    cancelled: bool = False
    seq: int = -1
    fed: int = 0  # prompt tokens already decoded
    last: int | None = None  # the token sampled last step, to feed next step
    written: int = 0


class LlamaBatcher:
    """Replies of one GGUF model on llama.cpp, decoded together (see the module docstring)."""

    def __init__(self, model_path: str, *, slots: int, context_tokens: int, threads: int | None = None,
                 prefill_chunk: int = 128, flash_attn: bool = True):
        import llama_cpp as lc
        import numpy as np

        self._lc, self._np = lc, np
        self.model_path, self.flash_attn, self.threads = str(model_path), flash_attn, threads
        _route_logs(lc)
        lc.llama_backend_init()
        mparams = lc.llama_model_default_params()
        self._model = lc.llama_model_load_from_file(str(model_path).encode(), mparams)
        if not self._model:
            raise LlamaBatchingError(f"llama.cpp cannot load {model_path}")
        self.vocab = lc.llama_model_get_vocab(self._model)
        self.n_vocab = lc.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train = lc.llama_model_n_ctx_train(self._model)
        self.bos, self.eos = lc.llama_vocab_bos(self.vocab), lc.llama_vocab_eos(self.vocab)
        self.context_tokens = min(context_tokens, self.n_ctx_train)
        cparams = lc.llama_context_default_params()
        cparams.n_ctx = self.context_tokens * slots
        cparams.n_seq_max = slots
        cparams.kv_unified = False  # each reply its own window: our prompts share no prefix
        # A step reads at most `prefill_chunk` prompt tokens (plus one token per reply being
        # written): long prompts take several steps, so the other replies keep streaming and a
        # cancelled or late reply is dropped within one chunk (~0.2 s at 128 on 2 cores).
        n_batch = prefill_chunk + slots
        cparams.n_batch = cparams.n_ubatch = n_batch
        if threads:
            cparams.n_threads = cparams.n_threads_batch = threads
        cparams.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        cparams.no_perf = True
        self._ctx = lc.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            lc.llama_model_free(self._model)
            raise LlamaBatchingError(f"llama.cpp cannot make a context for {model_path} ({slots} x "
                                     f"{self.context_tokens} tokens)")
        self._memory = lc.llama_get_memory(self._ctx)
        self._n_batch = n_batch
        self._chunk = prefill_chunk
        self._batch = lc.llama_batch_init(n_batch, 0, 1)
        self._free = list(range(slots))
        self._active: list[_Reply] = []
        self._inbox: queue.Queue = queue.Queue()
        self._rng = np.random.default_rng()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="llama-batcher", daemon=True)
        self._thread.start()

    # -- the vocabulary (read-only: any thread) ----------------------------------------

    def tokenize(self, text: str, *, parse_special: bool = True) -> list[int]:
        """Token ids of `text` (an already templated prompt: special tokens parsed), no BOS
        added (the chat template writes its own)."""
        data = text.encode("utf-8")
        size = len(data) + 8
        buffer = (self._lc.llama_token * size)()
        n = self._lc.llama_tokenize(self.vocab, data, len(data), buffer, size, False, parse_special)
        if n < 0:
            raise LlamaBatchingError(f"tokenizing needs {-n} tokens, more than {size}")
        return list(buffer[:n])

    def piece(self, token: int, *, special: bool = False) -> bytes:
        buffer = ctypes.create_string_buffer(64)
        n = self._lc.llama_token_to_piece(self.vocab, token, buffer, len(buffer), 0, special)
        if n < 0:
            buffer = ctypes.create_string_buffer(-n)
            n = self._lc.llama_token_to_piece(self.vocab, token, buffer, len(buffer), 0, special)
        return buffer.raw[:n]

    def token_text(self, token: int) -> str:
        return self.piece(token, special=True).decode("utf-8", errors="replace") if token >= 0 else ""

    def meta(self, key: str) -> str | None:
        buffer = ctypes.create_string_buffer(1 << 16)
        n = self._lc.llama_model_meta_val_str(self._model, key.encode(), buffer, len(buffer))
        if n < 0:
            return None
        if n >= len(buffer):
            buffer = ctypes.create_string_buffer(n + 1)
            self._lc.llama_model_meta_val_str(self._model, key.encode(), buffer, len(buffer))
        return buffer.value.decode("utf-8", errors="replace")

    # -- the readers' side ----------------------------------------------------------

    def submit(self, prompt: list[int], *, max_new_tokens: int, timeout_s: float, temperature: float = 0.0,
               top_p: float = 1.0) -> _Reply:
        if self._closed:
            raise LlamaBatchingError("the llama.cpp engine is closed")
        if len(prompt) >= self.context_tokens:
            raise LlamaBatchingError(f"the prompt ({len(prompt)} tokens) fills the {self.context_tokens}-token window")
        max_new_tokens = max(1, min(max_new_tokens, self.context_tokens - len(prompt)))
        reply = _Reply(list(prompt), max_new_tokens, temperature, top_p, time.monotonic() + timeout_s)
        self._inbox.put(reply)
        return reply

    def tokens(self, reply: _Reply, timeout_s: float):
        """The reply's token ids as they are decoded; closing the iterator cancels it."""
        try:
            while True:
                left = reply.deadline - time.monotonic()
                try:
                    item = reply.out.get(timeout=max(left, 0) + 0.5)  # the scheduler signals the deadline itself
                except queue.Empty:
                    raise LlamaBatchingError(f"local generation exceeded {timeout_s:g}s") from None
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            reply.cancelled = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._inbox.put(None)
        self._thread.join(timeout=30)
        if self._thread.is_alive():
            log.warning("llama.cpp scheduler still busy after 30 s; leaving its context allocated")
            return
        self._lc.llama_batch_free(self._batch)
        self._lc.llama_free(self._ctx)
        self._lc.llama_model_free(self._model)

    # -- the scheduler ----------------------------------------------------------------

    def _run(self) -> None:
        while not self._closed:
            try:
                self._admit(block=not self._active)
                self._drop_finished()
                if self._active:
                    self._step()
            except Exception as exc:  # noqa: BLE001 - every reader gets the error, the engine goes on
                log.exception("llama.cpp decoding step failed")
                for reply in list(self._active):
                    self._finish(reply, LlamaBatchingError(f"local generation failed: {exc}"))
        for reply in list(self._active):
            self._finish(reply, LlamaBatchingError("the llama.cpp engine was closed"))
        while not self._inbox.empty():
            reply = self._inbox.get_nowait()
            if reply is not None:
                reply.out.put(LlamaBatchingError("the llama.cpp engine was closed"))

    def _admit(self, *, block: bool) -> None:
        while self._free:
            try:
                reply = self._inbox.get(timeout=0.5) if block else self._inbox.get_nowait()
            except queue.Empty:
                return
            if reply is None:  # close()
                return
            block = False
            reply.seq = self._free.pop(0)
            self._active.append(reply)

    def _drop_finished(self) -> None:
        now = time.monotonic()
        for reply in list(self._active):
            if reply.cancelled:
                self._finish(reply, None)
            elif now > reply.deadline:
                self._finish(reply, LlamaBatchingError("local generation exceeded its time limit"))

    def _finish(self, reply: _Reply, outcome) -> None:
        self._lc.llama_memory_seq_rm(self._memory, reply.seq, -1, -1)
        self._active.remove(reply)
        self._free.append(reply.seq)
        if outcome is not None:
            reply.out.put(outcome)

    def _step(self) -> None:
        """One llama_decode: each writing reply's last token, then prompt chunks in the room
        left; the replies whose last position was decoded get their next token."""
        batch, n = self._batch, 0
        wants_logits: list[tuple[_Reply, int]] = []
        for reply in self._active:
            if reply.last is not None:
                self._put(n, reply.last, len(reply.prompt) + reply.written - 1, reply.seq, True)
                wants_logits.append((reply, n))
                n += 1
        room = self._chunk
        for reply in self._active:
            if reply.last is None and room > 0:
                chunk = reply.prompt[reply.fed: reply.fed + room]
                room -= len(chunk)
                for i, token in enumerate(chunk):
                    last = reply.fed + i == len(reply.prompt) - 1
                    self._put(n, token, reply.fed + i, reply.seq, last)
                    if last:
                        wants_logits.append((reply, n))
                    n += 1
                reply.fed += len(chunk)
        if n == 0:
            return
        batch.n_tokens = n
        rc = self._lc.llama_decode(self._ctx, batch)
        if rc != 0:
            raise LlamaBatchingError(f"llama_decode returned {rc}")
        for reply, index in wants_logits:
            token = self._sample(reply, index)
            reply.written += 1
            reply.last = token
            if self._lc.llama_vocab_is_eog(self.vocab, token):
                self._finish(reply, _DONE)
                continue
            reply.out.put(token)
            if reply.written >= reply.max_new_tokens:
                self._finish(reply, _DONE)

    def _put(self, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        batch = self._batch
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = logits

    def _sample(self, reply: _Reply, index: int) -> int:
        np = self._np
        pointer = self._lc.llama_get_logits_ith(self._ctx, index)
        logits = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(self.n_vocab,))
        if reply.temperature <= 0:
            return int(np.argmax(logits))
        scaled = logits.astype(np.float64) / reply.temperature
        probs = np.exp(scaled - scaled.max())
        probs /= probs.sum()
        if reply.top_p < 1.0:
            order = np.argsort(-probs)
            keep = order[: int(np.searchsorted(np.cumsum(probs[order]), reply.top_p)) + 1]
            mask = np.zeros_like(probs)
            mask[keep] = probs[keep]
            probs = mask / mask.sum()
        return int(self._rng.choice(self.n_vocab, p=probs))
