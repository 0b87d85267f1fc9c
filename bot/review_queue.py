"""The review queue: the customer turns whose labels would teach the models most, ranked,
for agents to confirm or correct with one click (issue 18).

An item is one customer turn and one task (sentiment or intent). Its `priority` is the
model's uncertainty about the turn plus the weight of each reason that makes its label
doubtful:

    low_confidence        sentiment: a small margin between the two best labels (or a low
                          score when the scores are not stored); intent: a low score
    possible_new_intent   intent: a score so low the turn may be an intent the model was
                          never trained on
    outcome_disagrees     sentiment: labelled "positive", yet the conversation was handed
                          to a person (escalated, or an agent wrote in it)
    classifiers_disagree  the intent implies a polarity the sentiment contradicts (a
                          "complaint" labelled "positive"); both tasks get the reason
    customer_disagrees    a customer's correction of this label waits for review; it stays
                          a signal (bot.feedback) until an agent confirms or corrects here

Turns with a confirmed label for the task (on the turn, or on the bot reply that answered
it, as storage.export reads them) are not in the queue. Order: highest priority first,
then message id, then task, so pages (a keyset cursor) stay stable while agents work
through the queue. The ranking (`rank`, `page`) is pure; `ReviewQueue` reads the turns
from storage and stores an agent's decision as the feedback rows the feedback API writes
(`bot.feedback.FeedbackService.record`: confirmed, confirmed_by the agent).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import sessionmaker

from bot.callers import Caller
from bot.feedback import FeedbackService
from bot.sentiment import SENTIMENT_LABELS, normalise_label
from core.errors import ConflictError, InputError, NotFoundError
from storage.repositories import review_queue as repo
from storage.repositories.feedback import DuplicateFeedback

TASKS = ("sentiment", "intent")
DEFAULT_LIMIT, MAX_LIMIT = 20, 100
SCAN_TURNS = 2000  # the newest customer turns the queue ranks (bounded work per request)

# When a reason is given (the uncertainty counts towards the priority regardless).
LOW_MARGIN = 0.35  # sentiment: best minus second-best probability below this
LOW_INTENT_SCORE = 0.6  # intent: top probability below this
NEW_INTENT_SCORE = 0.3  # intent: below this the turn may be an intent the model never saw
# Weights added to the uncertainty (0..1): a contradiction counts about as much as a coin
# flip of a model, a customer saying the label is wrong a little more.
WEIGHTS = {"outcome_disagrees": 1.0, "classifiers_disagree": 0.75, "customer_disagrees": 1.0,
           "possible_new_intent": 0.5, "low_confidence": 0.0}
# Intents that imply a sentiment: a turn of that intent labelled the opposite is doubtful.
INTENT_POLARITY = {"complaint": "negative"}
OPPOSITE = {"negative": "positive", "positive": "negative"}


@dataclass(frozen=True)
class Turn:
    """What the ranking knows about one customer turn."""

    message_id: str
    conversation_id: str
    text: str
    created_at: datetime
    language: str | None = None
    sentiment_label: str | None = None
    sentiment_score: float | None = None
    sentiment_scores: dict[str, float] | None = None
    intent_label: str | None = None
    intent_score: float | None = None
    handed_over: bool = False  # the conversation was escalated, or an agent wrote in it
    escalation_reason: str | None = None
    labelled: frozenset[str] = frozenset()  # tasks with a confirmed label already
    customer_says: dict[str, str] = field(default_factory=dict)  # task -> a customer's pending label


@dataclass(frozen=True)
class Reason:
    code: str
    weight: float
    detail: str


@dataclass(frozen=True)
class Item:
    turn: Turn
    task: str
    label: str | None
    confidence: float | None
    priority: float
    reasons: tuple[Reason, ...]

    @property
    def key(self) -> tuple[float, str, str]:
        return -self.priority, self.turn.message_id, self.task

    def public(self) -> dict:
        t = self.turn
        return {"message_id": t.message_id, "conversation_id": t.conversation_id, "task": self.task,
                "text": t.text, "language": t.language, "label": self.label, "confidence": self.confidence,
                "priority": self.priority,
                "reasons": [{"code": r.code, "weight": r.weight, "detail": r.detail} for r in self.reasons],
                "created_at": t.created_at.isoformat()}


# ---- the ranking (pure) -------------------------------------------------------------------

def sentiment_uncertainty(turn: Turn) -> tuple[float, float | None]:
    """(uncertainty 0..1, margin): 1 - (best - second best) of the stored probabilities, or
    the score rescaled to 0..1 over the three labels when only the best is stored."""
    scores = sorted((float(v) for v in (turn.sentiment_scores or {}).values()), reverse=True)
    if len(scores) >= 2:
        margin = scores[0] - scores[1]
        return min(1.0, max(0.0, 1.0 - margin)), margin
    score = turn.sentiment_score if turn.sentiment_score is not None else 0.0
    floor = 1.0 / len(SENTIMENT_LABELS)
    return min(1.0, max(0.0, (1.0 - score) / (1.0 - floor))), None


def _disagreement(turn: Turn) -> Reason | None:
    implied = INTENT_POLARITY.get(turn.intent_label or "")
    if implied is None or turn.sentiment_label != OPPOSITE.get(implied):
        return None
    return Reason("classifiers_disagree", WEIGHTS["classifiers_disagree"],
                  f"intent {turn.intent_label!r} implies {implied}, sentiment says {turn.sentiment_label}")


def _customer(turn: Turn, task: str, label: str | None) -> Reason | None:
    says = turn.customer_says.get(task)
    if says is None or says == label:
        return None
    return Reason("customer_disagrees", WEIGHTS["customer_disagrees"],
                  f"the customer says {says!r} (their correction waits for review)")


def sentiment_item(turn: Turn) -> Item:
    uncertainty, margin = sentiment_uncertainty(turn)
    reasons = []
    if (margin is not None and margin < LOW_MARGIN) or (margin is None and uncertainty > 1.0 - LOW_MARGIN):
        shown = f"margin {margin:.2f}" if margin is not None else f"score {turn.sentiment_score or 0:.2f}"
        reasons.append(Reason("low_confidence", WEIGHTS["low_confidence"],
                              f"{turn.sentiment_label} with {shown}: the model is unsure"))
    if turn.handed_over and turn.sentiment_label == "positive":
        why = f" ({turn.escalation_reason})" if turn.escalation_reason else ""
        reasons.append(Reason("outcome_disagrees", WEIGHTS["outcome_disagrees"],
                              f"labelled positive, yet the conversation was handed to a person{why}"))
    reasons += [r for r in (_disagreement(turn), _customer(turn, "sentiment", turn.sentiment_label)) if r]
    return _item(turn, "sentiment", turn.sentiment_label, turn.sentiment_score, uncertainty, reasons)


def intent_item(turn: Turn) -> Item:
    score = turn.intent_score if turn.intent_score is not None else 0.0
    uncertainty = min(1.0, max(0.0, 1.0 - score))
    reasons = []
    if score < LOW_INTENT_SCORE:
        reasons.append(Reason("low_confidence", WEIGHTS["low_confidence"],
                              f"{turn.intent_label} with score {score:.2f}: near the decision boundary"))
    if score < NEW_INTENT_SCORE:
        reasons.append(Reason("possible_new_intent", WEIGHTS["possible_new_intent"],
                              "so unsure it may be an intent the model was never trained on"))
    reasons += [r for r in (_disagreement(turn), _customer(turn, "intent", turn.intent_label)) if r]
    return _item(turn, "intent", turn.intent_label, turn.intent_score, uncertainty, reasons)


def _item(turn: Turn, task: str, label: str | None, confidence: float | None, uncertainty: float,
          reasons: list[Reason]) -> Item:
    priority = round(uncertainty + sum(r.weight for r in reasons), 6)
    return Item(turn, task, label, confidence, priority, tuple(reasons))


def rank(turns: list[Turn], *, task: str | None = None) -> list[Item]:
    """The queue: one item per turn and task the turn has a prediction for and no confirmed
    label, highest priority first (ties: message id, then task)."""
    tasks = TASKS if task is None else (task,)
    items = []
    for turn in turns:
        if "sentiment" in tasks and "sentiment" not in turn.labelled and turn.sentiment_label is not None:
            items.append(sentiment_item(turn))
        if "intent" in tasks and "intent" not in turn.labelled and turn.intent_label is not None:
            items.append(intent_item(turn))
    return sorted(items, key=lambda i: i.key)


def encode_cursor(item: Item) -> str:
    raw = f"{item.priority:.6f}|{item.turn.message_id}|{item.task}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        priority, message_id, task = raw.split("|")
        key = (-float(priority), message_id, task)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InputError("invalid cursor; pass the next_cursor of the previous page unchanged") from exc
    if task not in TASKS or not message_id:
        raise InputError("invalid cursor; pass the next_cursor of the previous page unchanged")
    return key


def page(items: list[Item], *, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> tuple[list[Item], str | None]:
    """One page of a ranked queue after `cursor` (keyset: an item confirmed meanwhile
    does not shift the next page); the cursor of the next page, None on the last."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be 1..{MAX_LIMIT}; got {limit}")
    if cursor:
        after = decode_cursor(cursor)
        items = [i for i in items if i.key > after]
    chosen = items[:limit]
    return chosen, encode_cursor(chosen[-1]) if len(items) > limit else None


# ---- the service: storage in, feedback rows out ---------------------------------------

def turn_of(message, *, handed_over: bool, escalation_reason: str | None, labels: list) -> Turn:
    """A Turn from a stored customer message and the label feedback on it (repo.LabelFeedback)."""
    labelled = {task for fb in labels if fb.review_status == "confirmed" for task in fb.tasks}
    customer_says = {task: label for fb in labels if fb.review_status == "pending"
                     for task, label in fb.labels.items()}
    return Turn(message.id, message.conversation_id, message.text, message.created_at, language=message.language,
                sentiment_label=message.sentiment_label, sentiment_score=message.sentiment_score,
                sentiment_scores=message.sentiment_scores, intent_label=message.intent_label,
                intent_score=message.intent_score, handed_over=handed_over, escalation_reason=escalation_reason,
                labelled=frozenset(labelled), customer_says=customer_says)


@dataclass
class ReviewQueue:
    sessions: sessionmaker
    feedback: FeedbackService
    # The intent model's labels, asked only when an intent label is checked; (): no intent model.
    intent_labels: Callable[[], tuple[str, ...]] = tuple
    scan_turns: int = SCAN_TURNS

    def _turns(self, session, *, task: str | None, language: str | None,
               message_id: str | None = None) -> list[Turn]:
        messages = repo.customer_turns(session, task=task, language=language, limit=self.scan_turns,
                                       message_id=message_id)
        outcomes = repo.handed_over(session, {m.conversation_id for m in messages})
        labels = repo.label_feedback(session, messages)
        return [turn_of(m, handed_over=m.conversation_id in outcomes,
                        escalation_reason=outcomes.get(m.conversation_id), labels=labels.get(m.id, []))
                for m in messages]

    def list(self, *, caller: Caller, limit: int = DEFAULT_LIMIT, task: str | None = None,
             language: str | None = None, cursor: str | None = None) -> dict:
        """One page of the queue: {"data": [item, ...], "count", "next_cursor"}."""
        _staff_only(caller)
        if task is not None and task not in TASKS:
            raise InputError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
        with self.sessions() as session:
            items, next_cursor = page(rank(self._turns(session, task=task, language=language), task=task),
                                      limit=limit, cursor=cursor)
            data = [i.public() for i in items]
        return {"data": data, "count": len(data), "next_cursor": next_cursor}

    def decide(self, message_id: str, *, task: str, caller: Caller, label: str | None = None) -> dict:
        """An agent's click: `label` None confirms the model's label, else corrects it. Stored
        as a feedback row on the turn (rating up when the label stands, down when corrected),
        confirmed by the agent, so the next export (storage.export) teaches it. When a
        customer's pending correction says exactly that, it is that row the agent confirms."""
        _staff_only(caller)
        if task not in TASKS:
            raise InputError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
        with self.sessions() as session:
            turns = self._turns(session, task=task, language=None, message_id=message_id)
        if not turns:
            raise NotFoundError(f"no customer turn {message_id!r}")
        turn = turns[0]
        if task in turn.labelled:
            raise ConflictError(f"the {task} of turn {message_id} is confirmed already; a later correction goes "
                                "through POST /v1/feedback")
        predicted = turn.sentiment_label if task == "sentiment" else turn.intent_label
        if label is None and predicted is None:
            raise InputError(f"turn {message_id} has no {task} prediction to confirm; correct it with a label")
        chosen = self._valid_label(task, predicted if label is None else label)
        rating = "up" if chosen == predicted else "down"
        field_name = "corrected_sentiment" if task == "sentiment" else "corrected_intent"
        try:
            feedback_id = self.feedback.record(message_id=message_id, rating=rating, caller=caller,
                                               **{field_name: chosen})
        except DuplicateFeedback as same:  # a customer sent just this correction: the click confirms theirs
            feedback_id = self.feedback.review(same.feedback_id, decision="confirm", caller=caller)["id"]
        return {"feedback_id": feedback_id, "message_id": message_id, "task": task, "label": chosen,
                "predicted": predicted, "rating": rating, "review_status": "confirmed", "confirmed_by": caller.name}

    def _valid_label(self, task: str, label: str) -> str:
        if task == "sentiment":
            label = normalise_label(label)
            if label not in SENTIMENT_LABELS:
                raise InputError(f"a sentiment label is one of {', '.join(SENTIMENT_LABELS)}; got {label!r}")
            return label
        label, known = label.strip(), self.intent_labels()
        if not known:
            raise InputError("no intent model is loaded, so an intent label cannot be checked")
        if label not in known:
            more = ", ..." if len(known) > 10 else ""
            raise InputError(f"{label!r} is not one of the intent model's {len(known)} labels "
                             f"({', '.join(known[:10])}{more})")
        return label


def _staff_only(caller: Caller) -> None:
    if not caller.is_staff:
        raise InputError("only agents and admins work the review queue")


def intent_labels_of(intent_service) -> tuple[str, ...]:
    """Every label the intent models (default and routes) can name; () without a model."""
    if intent_service is None:
        return ()
    classifiers = [intent_service.classifier, *intent_service.routes.values()]
    return tuple(dict.fromkeys(label for c in classifiers if c is not None for label in c.labels))


def for_runtime(runtime) -> ReviewQueue:
    """The queue over a runtime's database, feedback service and intent model's labels."""
    return ReviewQueue(runtime.sessions, runtime.feedback, intent_labels=lambda: intent_labels_of(runtime.intent))
