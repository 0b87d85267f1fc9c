"""Continuous batching for the local chat model: concurrent replies share forward passes.

On a CPU, one reply's decoding step is mostly fixed cost (Python, small matrix products
that leave the cores idle between them); a step over several replies costs little more
than a step over one. So replies being written at the same time are decoded together:
a new reply joins the running batch at the next step and leaves it when it ends, nobody
waits for the others to finish.

The engine is transformers' own (`model.init_continuous_batching`, a paged KV cache and
a scheduler in a background thread); this module sizes its cache for our context budget,
routes its outputs to the callers' streams, turns token ids into text pieces, and
cancels a reply whose reader went away or ran out of time. It serves greedy replies (the
product's default, temperature 0); sampled ones take `model.generate` in
bot/generation.py. For more than one machine's worth of chat, use vLLM or TGI
(`SUPPORTBOT_CHAT_BACKEND=remote`), which batch the same way on GPUs.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from typing import Iterator

from bot.prometheus import BATCH_QUEUE_DEPTH, BATCH_WAITING

log = logging.getLogger(__name__)


class BatchingError(RuntimeError):
    """The engine failed, or a reply ran past its time limit."""


class ContinuousBatcher:
    """Greedy replies of one causal LM, decoded together.

    `max_requests` replies are decoded at once (more wait in the engine's queue);
    the paged cache holds `max_requests` full context windows."""

    def __init__(self, model, tokenizer, *, context_tokens: int, max_requests: int = 8, page_size: int = 64):
        from transformers import ContinuousBatchingConfig, GenerationConfig

        self.tokenizer = tokenizer
        eos = model.generation_config.eos_token_id
        if eos is None:
            eos = tokenizer.eos_token_id
        # The engine takes sdpa as it is and switches eager to its paged variant, which
        # plain `generate` (sampled replies, same module) cannot run: use sdpa.
        if model.config._attn_implementation == "eager":
            model.set_attn_implementation("sdpa")
        self._model = model
        gen_config = GenerationConfig(do_sample=False, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id,
                                      max_new_tokens=256)
        cb_config = ContinuousBatchingConfig(
            page_size=page_size,  # tokens per cache page
            num_blocks=math.ceil(max_requests * context_tokens / page_size),  # every reply a full window
            max_batch_tokens=context_tokens,  # a whole prompt is read in one step (no chunked prefill)
            max_requests_per_batch=max_requests,
            allow_block_sharing=False,  # our prompts differ from the first token on (the article)
        )
        self._manager = self._model.init_continuous_batching(generation_config=gen_config,
                                                             continuous_batching_config=cb_config)
        self._streams: dict[str, queue.Queue] = {}
        self._max_requests = max_requests
        self._waiting = 0  # this batcher's share of BATCH_WAITING (several live during a hot swap)
        self._lock = threading.Lock()
        self._closed = False
        self._manager.start()
        # The engine's thread is not a daemon: stop it before the interpreter waits for it.
        if hasattr(threading, "_register_atexit"):
            threading._register_atexit(self.close)
        self._router = threading.Thread(target=self._route, name="batcher-router", daemon=True)
        self._router.start()

    # The engine puts every request's outputs on one queue; each caller reads its own.
    def _route(self) -> None:
        while not self._closed:
            try:
                output = self._manager.get_result(timeout=0.2)
            except Exception:  # noqa: BLE001 - the engine is gone; callers time out with a clear error
                log.exception("continuous batching: reading outputs failed")
                time.sleep(0.2)
                continue
            if output is None:
                if not self._manager.is_running() and not self._closed:
                    self._fail_all("the batching engine stopped")
                    time.sleep(0.2)
                continue
            with self._lock:
                stream = self._streams.get(output.request_id)
            if stream is not None:
                stream.put(output)

    def _fail_all(self, why: str) -> None:
        with self._lock:
            streams = list(self._streams.values())
        for stream in streams:
            stream.put(BatchingError(why))

    def stream(self, input_ids: list[int], *, max_new_tokens: int, timeout_s: float) -> Iterator[str]:
        """Text pieces of the greedy reply to `input_ids`, as they are decoded. Leaving the
        loop early cancels the reply; past `timeout_s` it is cancelled and BatchingError
        raised (after the pieces already given)."""
        if self._closed:
            raise BatchingError("the batcher is closed")
        deadline = time.monotonic() + timeout_s
        inbox: queue.Queue = queue.Queue()
        with self._lock:
            request_id = self._manager.add_request(list(input_ids), max_new_tokens=max_new_tokens, streaming=True)
            if request_id is None:
                raise BatchingError("the batching engine refused the request (stopped or overloaded)")
            self._streams[request_id] = inbox
            self._count_queue(+1)
        finished, sent = False, ""
        try:
            while not finished:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BatchingError(f"local generation exceeded {timeout_s:g}s")
                try:
                    output = inbox.get(timeout=left)
                except queue.Empty:
                    raise BatchingError(f"local generation exceeded {timeout_s:g}s") from None
                if isinstance(output, Exception):
                    raise output
                if output.error:
                    raise BatchingError(f"local generation failed: {output.error}")
                finished = output.is_finished()
                text = self.tokenizer.decode(output.generated_tokens, skip_special_tokens=True)
                if not finished and text.endswith("\ufffd"):
                    continue  # half of a multi-byte character: wait for the rest
                if len(text) > len(sent) and text.startswith(sent):
                    piece, sent = text[len(sent):], text
                    yield piece
        finally:
            with self._lock:
                if self._streams.pop(request_id, None) is not None:
                    self._count_queue(-1)
            if not finished:
                self._manager.cancel_request(request_id)

    def _count_queue(self, change: int) -> None:
        """Queue depth (bot.prometheus): replies in the engine, and those beyond the replies it
        decodes at once, which wait for a slot. Called under self._lock."""
        BATCH_QUEUE_DEPTH.inc(change)
        waiting = max(0, len(self._streams) - self._max_requests)
        BATCH_WAITING.inc(waiting - self._waiting)
        self._waiting = waiting

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._manager.stop(block=True, timeout=10, hard_stop=True)
        except Exception:  # noqa: BLE001 - closing anyway
            log.exception("continuous batching: stopping the engine failed")
        self._fail_all("the batcher was closed")
