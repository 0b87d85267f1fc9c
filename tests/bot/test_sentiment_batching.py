"""Micro-batched sentiment: concurrent calls share model calls (one batcher per model) and
each gets its own results, through the service and through the real HTTP server."""

from __future__ import annotations

import threading

import httpx
import numpy as np
import pytest

from app.server import create_app
from bot.classifier import TextClassifier
from core.config import settings_with
from bot.runtime import Runtime
from bot.sentiment import SentimentService
from fixtures.fakes import KeywordClassifier
from fixtures.server import serve

JOIN_S = 30

REQUESTS = [["I love this phone", "where is my order"], ["服务太差了"], ["great service", "好", "awful"],
            ["hate it"], ["谢谢，很开心", "the delivery is broken"], ["hello"]]


class GatedClassifier(KeywordClassifier):
    """A keyword classifier whose first call waits until `release` is set, so that the
    other callers queue up behind it; texts containing "poison" make a call fail."""

    def __init__(self, name: str):
        super().__init__(name)
        self.release = threading.Event()
        self.entered = threading.Event()

    def predict_proba(self, texts):
        self.entered.set()
        self.release.wait(JOIN_S)
        if any("poison" in t for t in texts):
            raise ValueError("this model cannot read poison")
        return super().predict_proba(texts)


def in_threads(fn, args_list):
    results, errors = {}, {}

    def run(k):
        try:
            results[k] = fn(args_list[k])
        except Exception as exc:  # noqa: BLE001 - checked by the tests
            errors[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(args_list))]
    for t in threads:
        t.start()
    return threads, results, errors


def wait_until(condition):
    for _ in range(JOIN_S * 100):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("condition not reached")


def public(results):
    return [r.public() for r in results]


def _zh(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in text)


def test_concurrent_calls_are_classified_together_and_routed_back():
    en, zh = GatedClassifier("en"), GatedClassifier("zh")
    zh.release.set()
    service = SentimentService(en, {"zh": zh, "ja": zh}).with_batching(max_wait_ms=0)
    reference = SentimentService(KeywordClassifier("en"), {"zh": (z := KeywordClassifier("zh")), "ja": z})

    batcher = service.batchers[id(en)]
    first, first_results, _ = in_threads(service.classify, [["the first, alone"]])
    assert en.entered.wait(JOIN_S)
    threads, results, errors = in_threads(service.classify, REQUESTS)
    with_english = [r for r in REQUESTS if any(not _zh(t) for t in r)]
    wait_until(lambda: batcher.pending() == len(with_english))
    en.release.set()
    for t in first + threads:
        t.join(JOIN_S)

    assert not errors
    for k, texts in enumerate(REQUESTS):
        assert public(results[k]) == public(reference.classify(texts))
    # one English model call for the English texts of all six requests (after the first, lone one)
    assert len(en.calls) == 2 and sorted(en.calls[1]) == sorted(t for r in REQUESTS for t in r if not _zh(t))
    assert sorted(t for call in zh.calls for t in call) == sorted(t for r in REQUESTS for t in r if _zh(t))


def test_english_texts_do_not_wait_behind_a_chinese_batch():
    en, zh = GatedClassifier("en"), GatedClassifier("zh")
    en.release.set()
    service = SentimentService(en, {"zh": zh}).with_batching(max_wait_ms=0)
    threads, results, _ = in_threads(service.classify, [["服务太差了"]])
    assert zh.entered.wait(JOIN_S)  # the Chinese model is busy (held)
    assert [r.label for r in service.classify(["great service"])] == ["positive"]
    zh.release.set()
    for t in threads:
        t.join(JOIN_S)
    assert [r.label for r in results[0]] == ["negative"]


def test_a_request_of_max_texts_or_more_runs_in_its_own_thread():
    class HoldsOneText(KeywordClassifier):
        release = threading.Event()
        entered = threading.Event()

        def predict_proba(self, texts):
            if texts == ["held"]:
                self.entered.set()
                self.release.wait(JOIN_S)
            return super().predict_proba(texts)

    en = HoldsOneText("en")
    service = SentimentService(en).with_batching(max_wait_ms=0, max_items=4)
    threads, _, _ = in_threads(service.classify, [["held"]])
    assert en.entered.wait(JOIN_S)  # the batcher's model call is held...
    big = service.classify(["good", "bad", "fine", "great"])  # ...and a 4-text request does not wait for it
    assert [r.label for r in big] == ["positive", "negative", "neutral", "positive"]
    en.release.set()
    for t in threads:
        t.join(JOIN_S)
    assert service.batchers[id(en)].batches == 1


def test_a_failing_request_does_not_fail_the_requests_batched_with_it():
    en = GatedClassifier("en")
    service = SentimentService(en).with_batching(max_wait_ms=0)
    first, _, _ = in_threads(service.classify, [["first"]])
    assert en.entered.wait(JOIN_S)
    batch = [["good"], ["poison pill"], ["bad", "good"]]
    threads, results, errors = in_threads(service.classify, batch)
    wait_until(lambda: service.batchers[id(en)].pending() == len(batch))
    en.release.set()
    for t in first + threads:
        t.join(JOIN_S)
    assert set(errors) == {1} and isinstance(errors[1], ValueError)
    assert [r.label for r in results[0]] == ["positive"]
    assert [r.label for r in results[2]] == ["negative", "positive"]


def test_explain_gives_the_same_result_with_batching():
    batched = SentimentService(KeywordClassifier("en")).with_batching(max_wait_ms=0)
    plain = SentimentService(KeywordClassifier("en"))
    assert public(batched.classify(["i love it, not bad"], explain=True)) == \
        public(plain.classify(["i love it, not bad"], explain=True))


def test_batched_real_model_scores_match_unbatched(tiny_classifier_dir, tmp_path):
    clf = TextClassifier.load(str(tiny_classifier_dir), tmp_path, batch_size=4)
    service = SentimentService(clf).with_batching(max_wait_ms=1, max_items=64)
    texts = [["the phone is good"], ["where is my order please", "i hate this order"], ["ok"],
             ["your service is terrible and the delivery is broken", "thanks"], ["the app is great"]] * 3
    threads, results, errors = in_threads(service.classify, texts)
    for t in threads:
        t.join(JOIN_S)
    assert not errors
    for k, request in enumerate(texts):
        want = clf.predict_proba(request)
        got = np.array([[r.scores[label] for label in clf.labels] for r in results[k]])
        np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.fixture
def batched_server(tmp_path):
    en = KeywordClassifier("en-v1")
    poisoned = _Poisoned(en)
    service = SentimentService(poisoned, {"zh": (zh := KeywordClassifier("zh-v1")), "ja": zh})
    service.with_batching(max_wait_ms=2)
    runtime = Runtime.start(settings_with(home=tmp_path / "home", rate_limit_per_minute=0), sentiment=service)
    with serve(create_app(runtime, ui=False)) as url:
        yield url, service
    runtime.close()


class _Poisoned:
    def __init__(self, inner):
        self.inner, self.name, self.labels = inner, inner.name, inner.labels

    def predict_proba(self, texts):
        if any("poison" in t for t in texts):
            raise ValueError("this model cannot read poison")
        return self.inner.predict_proba(texts)


def test_http_concurrent_clients_each_get_their_own_results(batched_server):
    url, service = batched_server
    reference = SentimentService(KeywordClassifier("en-v1"), {"zh": (z := KeywordClassifier("zh-v1")), "ja": z})
    bodies = [REQUESTS[k % len(REQUESTS)] for k in range(24)] + [["poison"]]

    def post(texts):
        with httpx.Client(base_url=url, timeout=JOIN_S) as client:
            return client.post("/v1/sentiment", json={"texts": texts})

    threads, responses, errors = in_threads(post, bodies)
    for t in threads:
        t.join(JOIN_S)
    assert not errors
    for k, texts in enumerate(bodies[:-1]):
        assert responses[k].status_code == 200, responses[k].text
        assert responses[k].json()["results"] == public(reference.classify(texts))
    poisoned = responses[len(bodies) - 1]
    assert poisoned.status_code == 500 and poisoned.json()["error"]["type"] == "internal_error"
