"""The micro-batcher: concurrent callers' items run together and come back to the right caller.

No timings: a gate (an Event the model function waits on) holds the first batch while
the other callers queue up, so which requests share a batch is deterministic.
"""

from __future__ import annotations

import threading

import pytest

from bot.batching import BatcherFullError, MicroBatcher
from core.errors import ModelLoadError

JOIN_S = 30  # a generous bound for threads to finish: a hang fails the test instead of blocking it


class GatedModel:
    """Doubles each item; the first call waits for `gate`; records every call's items.
    Items equal to "poison" make the whole call fail, as a real model fails on a bad input."""

    def __init__(self, gated: bool = True):
        self.gate = threading.Event()
        self.entered = threading.Event()
        if not gated:
            self.gate.set()
        self.calls: list[list] = []

    def __call__(self, items: list) -> list:
        self.entered.set()
        self.gate.wait(JOIN_S)
        self.calls.append(list(items))
        if "poison" in items:
            raise ValueError("the model cannot read 'poison'")
        return [item * 2 for item in items]


def run_callers(batcher: MicroBatcher, requests: list[list]) -> tuple[dict, dict]:
    results, errors = {}, {}

    def call(k: int) -> None:
        try:
            results[k] = batcher.submit(requests[k])
        except Exception as exc:  # noqa: BLE001 - checked by the test
            errors[k] = exc

    threads = [threading.Thread(target=call, args=(k,)) for k in range(len(requests))]
    for t in threads:
        t.start()
    return threads, (results, errors)


def hold_first_batch_then_release(model: GatedModel, batcher: MicroBatcher, first: list, rest: list[list]):
    """`first` is taken alone while the model is held; `rest` queue up meanwhile, then the
    model is released. Returns (results, errors) of all, `first` at index 0."""
    threads0, (results, errors) = run_callers(batcher, [first])
    assert model.entered.wait(JOIN_S)
    threads, (results_rest, errors_rest) = run_callers(batcher, rest)
    for _ in range(JOIN_S * 100):
        if batcher.pending() == len(rest):
            break
        threading.Event().wait(0.01)
    assert batcher.pending() == len(rest)
    model.gate.set()
    for t in threads0 + threads:
        t.join(JOIN_S)
    results.update({k + 1: v for k, v in results_rest.items()})
    errors.update({k + 1: v for k, v in errors_rest.items()})
    return results, errors


def test_concurrent_requests_share_a_batch_and_each_gets_its_own_results_in_order():
    model = GatedModel()
    batcher = MicroBatcher(model, max_wait_ms=0, max_items=1000)
    rest = [[k * 100 + i for i in range(k % 4 + 1)] for k in range(1, 16)]
    results, errors = hold_first_batch_then_release(model, batcher, [0, 1, 2], rest)
    assert not errors
    assert results[0] == [0, 2, 4]
    for k, items in enumerate(rest, start=1):
        assert results[k] == [2 * x for x in items]
    # the 15 queued requests ran as one batch, in arrival order within each request
    assert len(model.calls) == 2
    assert sorted(model.calls[1]) == sorted(x for items in rest for x in items)
    for items in rest:
        positions = [model.calls[1].index(x) for x in items]
        assert positions == sorted(positions) and positions == list(range(positions[0], positions[0] + len(items)))
    assert batcher.batches == 2


def test_a_failing_request_fails_alone_and_its_batch_mates_get_their_results():
    model = GatedModel()
    batcher = MicroBatcher(model, max_wait_ms=0, max_items=1000)
    rest = [[1, 2], ["poison"], [3], [4, 5, 6]]
    results, errors = hold_first_batch_then_release(model, batcher, [0], rest)
    assert set(errors) == {2}
    assert isinstance(errors[2], ValueError) and "poison" in str(errors[2])
    assert results == {0: [0], 1: [2, 4], 3: [6], 4: [8, 10, 12]}
    # the failed batch was run again request by request
    assert ["poison"] in model.calls and [1, 2] in model.calls


def test_a_batch_holds_at_most_max_items_and_a_larger_request_runs_alone_unsplit():
    model = GatedModel()
    batcher = MicroBatcher(model, max_wait_ms=0, max_items=4)
    rest = [[1, 2], [3, 4], [5, 6, 7, 8, 9, 10], [11]]
    results, errors = hold_first_batch_then_release(model, batcher, [0], rest)
    assert not errors
    assert results == {0: [0], 1: [2, 4], 2: [6, 8], 3: [10, 12, 14, 16, 18, 20], 4: [22]}
    assert model.calls[1:] == [[1, 2, 3, 4], [5, 6, 7, 8, 9, 10], [11]]


def test_a_request_alone_is_served_at_once_not_after_max_wait():
    model = GatedModel(gated=False)
    batcher = MicroBatcher(model, max_wait_ms=600_000, max_items=10_000)  # waiting would take 10 minutes
    done = []
    for items in (["a", "b"], ["c"]):
        t = threading.Thread(target=lambda items=items: done.append(batcher.submit(items)))
        t.start()
        t.join(JOIN_S)
    assert done == [["aa", "bb"], ["cc"]]
    assert model.calls == [["a", "b"], ["c"]]


def test_under_concurrent_load_the_worker_waits_for_more_callers():
    model = GatedModel()
    batcher = MicroBatcher(model, max_wait_ms=600_000, max_items=2)
    results, errors = hold_first_batch_then_release(model, batcher, [0], [[1], [2]])  # a batch of 2: load
    assert not errors and model.calls == [[0], [1, 2]]
    # now a lone request is held (up to max_wait) until a second one fills the batch
    threads, (later, _) = run_callers(batcher, [[3]])
    for _ in range(JOIN_S * 100):
        if batcher.pending() == 1:
            break
        threading.Event().wait(0.01)
    threading.Event().wait(0.05)
    assert model.calls == [[0], [1, 2]]  # [3] was not run alone
    assert batcher.submit([4]) == [8]
    for t in threads:
        t.join(JOIN_S)
    assert later == {0: [6]} and model.calls[-1] == [3, 4]


def test_sequential_calls_each_run_once_and_an_empty_call_runs_nothing():
    model = GatedModel(gated=False)
    batcher = MicroBatcher(model, max_wait_ms=0)
    assert batcher.submit([1]) == [2]
    assert batcher.submit([2, 3]) == [4, 6]
    assert batcher.submit([]) == []
    assert model.calls == [[1], [2, 3]]


def test_the_queue_is_bounded():
    model = GatedModel()
    batcher = MicroBatcher(model, max_wait_ms=0, max_queue=2)
    threads0, _ = run_callers(batcher, [[0]])
    assert model.entered.wait(JOIN_S)  # the first request is in the model, no longer queued
    threads, (results, errors) = run_callers(batcher, [[1], [2]])
    for _ in range(JOIN_S * 100):
        if batcher.pending() == 2:
            break
        threading.Event().wait(0.01)
    with pytest.raises(BatcherFullError, match="already waiting"):
        batcher.submit([3])
    assert issubclass(BatcherFullError, ModelLoadError)  # answered 503 by the API
    model.gate.set()
    for t in threads0 + threads:
        t.join(JOIN_S)
    assert results == {0: [2], 1: [4]} and not errors


def test_a_wrong_number_of_results_is_an_error_not_a_misrouted_answer():
    batcher = MicroBatcher(lambda items: items[:-1], max_wait_ms=0)
    with pytest.raises(RuntimeError, match="2 results for 3 items"):
        batcher.submit([1, 2, 3])


def test_the_worker_exits_when_idle_and_comes_back_on_the_next_request():
    batcher = MicroBatcher(lambda items: items, max_wait_ms=0, idle_exit_s=0.01)
    assert not batcher.running
    assert batcher.submit(["x"]) == ["x"]
    for _ in range(JOIN_S * 100):
        if not batcher.running:
            break
        threading.Event().wait(0.01)
    assert not batcher.running
    assert batcher.submit(["y"]) == ["y"]


def test_options_are_checked():
    with pytest.raises(ValueError):
        MicroBatcher(lambda x: x, max_items=0)
    with pytest.raises(ValueError):
        MicroBatcher(lambda x: x, max_wait_ms=-1)
