"""Micro-batching: items from concurrent callers are run through a model together.

A model call on a CPU costs much less per item in a batch than one item at a time, and
two concurrent forward passes on two cores only fight over them. So callers (the HTTP
worker threads, the dialogue) `submit` their items and wait; one worker thread takes
everything that is waiting (up to `max_items`), runs `fn` once over all of it and hands
each caller its own slice back, in order.

Requests that queue up while a batch runs go into the next batch at once. Waiting for
more only pays under concurrent load, so the worker waits (until `max_wait_ms` after the
oldest waiting request) only while the previous batch held more than one request: a
caller that comes alone is served at once, and concurrent callers are gathered.

Errors stay with their requests: when a batch of several requests fails, each request
is run again on its own, so only the request that caused the failure gets the error.
The queue is bounded (`max_queue` requests): past it `submit` raises `BatcherFullError`
(HTTP 503) instead of letting the wait grow without limit. The worker thread starts on
the first request and exits after `idle_exit_s` without any, so a replaced model (a hot
swap) leaves no thread behind.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Generic, Sequence, TypeVar

from core.errors import ModelLoadError

T = TypeVar("T")
R = TypeVar("R")


class BatcherFullError(ModelLoadError):
    """Too many requests are waiting for the model (HTTP 503, like an unavailable model)."""


@dataclass
class _Request(Generic[T, R]):
    items: list[T]
    enqueued: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    result: list[R] | None = None
    error: BaseException | None = None


class MicroBatcher(Generic[T, R]):
    """Runs `fn(items) -> results` (one result per item, same order) over the items of
    concurrent `submit` calls together."""

    def __init__(self, fn: Callable[[list[T]], Sequence[R]], *, max_wait_ms: float = 5.0, max_items: int = 64,
                 max_queue: int = 256, idle_exit_s: float = 30.0, name: str = "micro-batcher"):
        if max_wait_ms < 0 or max_items < 1 or max_queue < 1:
            raise ValueError("max_wait_ms must be >= 0, max_items and max_queue >= 1")
        self.fn = fn
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_items = max_items
        self.max_queue = max_queue
        self.idle_exit_s = idle_exit_s
        self.name = name
        self._queue: deque[_Request[T, R]] = deque()
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._busy = False  # the last batch held several requests: wait for more before the next
        self.batches = 0  # batches run so far (for tests and metrics); requests per batch vary

    def submit(self, items: Sequence[T]) -> list[R]:
        """Blocks until `items` are done; returns their results in order, or raises what
        `fn` raised for them."""
        if not items:
            return []
        request: _Request[T, R] = _Request(list(items))
        with self._cond:
            if len(self._queue) >= self.max_queue:
                raise BatcherFullError(f"{self.name}: {len(self._queue)} requests are already waiting for the model; "
                                       "retry in a moment")
            self._queue.append(request)
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._worker.start()
            self._cond.notify_all()
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.result  # type: ignore[return-value]

    def pending(self) -> int:
        """Requests waiting for a batch (not counting the batch being run)."""
        with self._cond:
            return len(self._queue)

    @property
    def running(self) -> bool:
        """Whether the worker thread is alive (it exits after idle_exit_s without requests)."""
        with self._cond:
            return self._worker is not None

    # -- the worker thread ------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._cond.wait(self.idle_exit_s)
                    if not self._queue:
                        self._worker = None
                        return
                batch = self._gather()
                self._busy = len(batch) > 1
            self._execute(batch)

    def _gather(self) -> list[_Request[T, R]]:
        """Called with the lock held and the queue non-empty: under concurrent load waits
        until max_wait after the oldest request or until max_items are waiting; then takes
        what fits."""
        deadline = self._queue[0].enqueued + (self.max_wait_s if self._busy else 0.0)
        while sum(len(r.items) for r in self._queue) < self.max_items:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)
        batch = [self._queue.popleft()]  # a request larger than max_items runs alone, unsplit
        size = len(batch[0].items)
        while self._queue and size + len(self._queue[0].items) <= self.max_items:
            size += len(self._queue[0].items)
            batch.append(self._queue.popleft())
        return batch

    def _execute(self, batch: list[_Request[T, R]]) -> None:
        items = [item for request in batch for item in request.items]
        try:
            results = list(self.fn(items))
            if len(results) != len(items):
                raise RuntimeError(f"{self.name}: the model returned {len(results)} results for {len(items)} items")
        except BaseException as exc:  # noqa: BLE001 - handed to the callers, never lost
            if len(batch) > 1:  # find the request that failed: the others must not fail with it
                for request in batch:
                    self._execute([request])
                return
            batch[0].error = exc
            batch[0].done.set()
            return
        self.batches += 1
        start = 0
        for request in batch:
            request.result = results[start : start + len(request.items)]
            start += len(request.items)
            request.done.set()
