"""The review queue's ranking (bot.review_queue, pure): which turns come first and why,
what is left out, and pages that stay stable while agents work through the queue."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.review_queue import MAX_LIMIT, Turn, page, rank, sentiment_uncertainty
from core.errors import InputError

AT = datetime(2026, 1, 1, tzinfo=UTC)


def turn(mid: str, label: str = "neutral", scores: dict | None = None, **kw) -> Turn:
    scores = scores if scores is not None else {"negative": 0.05, "neutral": 0.9, "positive": 0.05}
    return Turn(mid, "c-" + mid, f"text {mid}", AT, sentiment_label=label, sentiment_score=max(scores.values()),
                sentiment_scores=scores, **kw)


def codes(item) -> list[str]:
    return [r.code for r in item.reasons]


def test_a_low_confidence_turn_ranks_above_a_confident_one():
    sure = turn("a", "positive", {"negative": 0.02, "neutral": 0.03, "positive": 0.95})
    unsure = turn("b", "negative", {"negative": 0.42, "neutral": 0.38, "positive": 0.20})
    items = rank([sure, unsure])
    assert [i.turn.message_id for i in items] == ["b", "a"]
    assert codes(items[0]) == ["low_confidence"] and "margin 0.04" in items[0].reasons[0].detail
    assert codes(items[1]) == []  # in the queue, last, with no reason to doubt it
    assert items[0].priority == pytest.approx(0.96) and items[1].priority == pytest.approx(0.08)


def test_the_margin_not_the_score_measures_doubt():
    two_way = turn("a", "negative", {"negative": 0.5, "neutral": 0.49, "positive": 0.01})
    three_way = turn("b", "negative", {"negative": 0.4, "neutral": 0.3, "positive": 0.3})
    assert sentiment_uncertainty(two_way)[0] > sentiment_uncertainty(three_way)[0]
    only_score = Turn("c", "c", "t", AT, sentiment_label="neutral", sentiment_score=1 / 3)
    assert sentiment_uncertainty(only_score) == (pytest.approx(1.0), None)


def test_an_escalation_after_a_positive_turn_is_flagged_with_its_reason():
    confident_positive = turn("a", "positive", {"negative": 0.02, "neutral": 0.03, "positive": 0.95},
                              handed_over=True, escalation_reason="asked_for_human")
    unsure_elsewhere = turn("b", "negative", {"negative": 0.40, "neutral": 0.35, "positive": 0.25})
    calm_positive = turn("c", "positive", {"negative": 0.02, "neutral": 0.03, "positive": 0.95})
    items = rank([unsure_elsewhere, calm_positive, confident_positive], task="sentiment")
    assert [i.turn.message_id for i in items] == ["a", "b", "c"]
    assert codes(items[0]) == ["outcome_disagrees"]
    assert "handed to a person (asked_for_human)" in items[0].reasons[0].detail
    negative_then_escalated = turn("d", "negative", {"negative": 0.9, "neutral": 0.05, "positive": 0.05},
                                   handed_over=True)
    assert codes(rank([negative_then_escalated])[0]) == []  # that outcome agrees


def test_classifiers_that_disagree_flag_both_tasks():
    t = turn("a", "positive", {"negative": 0.1, "neutral": 0.1, "positive": 0.8}, intent_label="complaint",
             intent_score=0.9)
    items = rank([t])
    assert {i.task for i in items} == {"sentiment", "intent"}
    assert all("classifiers_disagree" in codes(i) for i in items)
    assert "'complaint' implies negative" in items[0].reasons[-1].detail


def test_an_intent_near_its_boundary_may_be_a_new_intent():
    clear = Turn("a", "c", "t", AT, intent_label="track_order", intent_score=0.95)
    boundary = Turn("b", "c", "t", AT, intent_label="track_order", intent_score=0.5)
    unknown = Turn("c", "c", "t", AT, intent_label="cancel_order", intent_score=0.2)
    items = rank([clear, boundary, unknown], task="intent")
    assert [(i.turn.message_id, codes(i)) for i in items] == [
        ("c", ["low_confidence", "possible_new_intent"]), ("b", ["low_confidence"]), ("a", [])]
    assert rank([clear], task="sentiment") == []  # no sentiment prediction: nothing to label


def test_confirmed_tasks_are_left_out_and_a_customers_correction_is_a_reason():
    done = turn("a", intent_label="track_order", intent_score=0.4, labelled=frozenset({"sentiment"}))
    assert [i.task for i in rank([done])] == ["intent"]
    assert rank([turn("b", labelled=frozenset({"sentiment", "intent"}), intent_label="x", intent_score=0.1)]) == []
    disputed = turn("c", "neutral", customer_says={"sentiment": "negative"})
    agreed = turn("d", "neutral", customer_says={"sentiment": "neutral"})
    items = rank([agreed, disputed])
    assert [i.turn.message_id for i in items] == ["c", "d"]
    assert codes(items[0]) == ["customer_disagrees"] and "'negative'" in items[0].reasons[0].detail
    assert codes(items[1]) == []


def test_pages_follow_one_stable_order_and_survive_confirmed_items():
    turns = [turn(f"m{i:02d}", "neutral", {"negative": 0.3, "neutral": 0.3 + i / 100, "positive": 0.4 - i / 100})
             for i in range(25)]
    turns += [turn("tie-b", "neutral", {"negative": 0.1, "neutral": 0.5, "positive": 0.4}),
              turn("tie-a", "neutral", {"negative": 0.1, "neutral": 0.5, "positive": 0.4})]
    ranked = rank(turns)
    assert rank(list(reversed(turns))) == ranked  # input order does not matter; ties by message id
    seen, cursor = [], None
    while True:
        items, cursor = page(ranked, limit=10, cursor=cursor)
        seen += items
        if cursor is None:
            break
    assert seen == ranked
    first, cursor = page(ranked, limit=10)
    remaining = [i for i in ranked if i not in first[:3]]  # an agent confirmed three meanwhile
    second, _ = page(remaining, limit=10, cursor=cursor)
    assert second == ranked[10:20]


@pytest.mark.parametrize("cursor", ["!!", "bm90LWEtY3Vyc29y", "MC41fHh8Y2hhdA"])
def test_a_bad_cursor_or_limit_says_what_to_do(cursor):
    with pytest.raises(InputError, match="next_cursor"):
        page([], cursor=cursor)
    with pytest.raises(InputError, match="limit"):
        page([], limit=MAX_LIMIT + 1)
