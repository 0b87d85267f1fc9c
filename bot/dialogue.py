"""The dialogue engine: one pipeline per customer turn.

    guard → sentiment + intent → (stored) → escalation rules → retrieval → generation → storage

The customer's message is stored (committed) before any reply is generated, so a turn
the API acknowledged is never lost, and a failing or slow generator degrades to an
answer made from the retrieved article. While a human agent holds the conversation
(status `escalated`) the bot stores the customer's turns and stays silent.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from sqlalchemy.orm import Session, sessionmaker

from bot import faithfulness, grounding, injection, policy, prompting
from bot.api.schemas import ConversationPublic, MessagePublic, TurnPublic
from core.errors import InputError, NotFoundError
from bot.escalation import EscalationPolicy, TurnSignals
from bot.generation import GenerationError, GenerationParams, Generator
from bot.guard import check_message, check_metadata, check_name
from bot.intent import IntentResult, IntentService
from bot.redaction import Redactor
from bot.sealing import Sealer
from bot.retrieval import Hit, KnowledgeIndex
from bot.sentiment import SentimentResult, SentimentService
from storage.models import Conversation, Message
from storage.repositories import conversations as repo

log = logging.getLogger(__name__)

STREAK_KEY = "supportbot_no_answer_streak"  # in conversation metadata


@dataclass
class DialogueConfig:
    answer_threshold: float = 0.35  # retrieval score needed to answer from an article
    generate_languages: tuple[str, ...] = ()  # languages the model writes; others get the article's sentences
    history_messages: int = 8  # earlier messages given to the model (then fitted to the window)
    max_text_chars: int = 5000
    redactor: Redactor = field(default_factory=Redactor)  # PII out before anything is stored
    sealer: Sealer | None = None  # keeps the text before redaction, encrypted (operator opt-in)
    params: GenerationParams = field(default_factory=lambda: GenerationParams(max_tokens=160, timeout_s=60))


@dataclass
class Reply:
    message_id: str
    text: str
    sources: list[dict]


@dataclass
class TurnResult:
    conversation_id: str
    message_id: str
    language: str
    sentiment: dict
    intent: dict | None
    reply: Reply | None
    escalate: bool
    escalation_reason: str | None
    status: str
    model_version: str | None = None
    latency_ms: float = 0.0

    def public(self) -> TurnPublic:
        """The turn as the API returns it: TurnPublic (bot/api/schemas.py) is the one
        definition of that shape; the internal fields (language, model_version,
        latency_ms) stay out."""
        return TurnPublic.model_validate(self, from_attributes=True)


@dataclass
class _Turn:
    """One customer turn on its way through stream_turn's steps."""
    conversation_id: str
    text: str  # guarded, PII redacted
    original: str | None  # the sealed text before redaction, when it is kept
    started: float
    params: GenerationParams
    generator: Generator | None  # the models the turn started with
    sentiment: SentimentResult
    intent: IntentResult | None
    language: str  # the language replies are written in
    history: list[tuple] = field(default_factory=list)  # earlier messages: (role, text, language, label, score)
    base: dict = field(default_factory=dict)  # the TurnResult fields every outcome shares
    held: bool = False  # a person holds the conversation
    held_reason: str | None = None
    reason: str | None = None  # why this turn escalates, if it does
    streak: int = 0  # turns in a row no article answered

    @property
    def upset(self) -> bool:
        return self.sentiment.label == "negative"


@dataclass
class _Answer:
    text: str
    sources: list[dict]
    model_version: str


def message_public(m: Message) -> MessagePublic:
    """A stored message in its public shape (bot.api.schemas.MessagePublic)."""
    fields = {"id": m.id, "role": m.role, "text": m.text, "created_at": m.created_at.isoformat(),
              "language": m.language}
    if m.sentiment_label is not None:
        fields["sentiment"] = {"label": m.sentiment_label, "score": m.sentiment_score}
    if m.intent_label is not None:
        fields["intent"] = {"label": m.intent_label, "score": m.intent_score}
    if m.role == "bot":
        fields["sources"] = list(m.sources or [])
        fields["model_version"] = m.model_version
    if m.agent:
        fields["agent"] = m.agent
    return MessagePublic(**fields)


def conversation_public(c: Conversation, *, with_messages: bool = True) -> ConversationPublic:
    """A stored conversation in its public shape (bot.api.schemas.ConversationPublic);
    the dialogue's own metadata (the no-answer streak) is not shown."""
    fields = {"id": c.id, "status": c.status, "channel": c.channel, "customer_ref": c.customer_ref,
              "metadata": {k: v for k, v in (c.meta or {}).items() if k != STREAK_KEY},
              "escalation_reason": c.escalation_reason, "created_at": c.created_at.isoformat(),
              "updated_at": c.updated_at.isoformat()}
    if with_messages:
        fields["messages"] = [message_public(m) for m in c.messages]
    return ConversationPublic(**fields)


class DialogueEngine:
    def __init__(self, *, sessions: sessionmaker, sentiment: SentimentService, intent: IntentService | None,
                 knowledge: Callable[[], KnowledgeIndex], generator: Generator | None,
                 policy: EscalationPolicy | None = None, config: DialogueConfig | None = None):
        self.sessions = sessions
        self.sentiment = sentiment
        self.intent = intent
        self.knowledge = knowledge
        self.generator = generator
        self.policy = policy or EscalationPolicy()
        self.config = config or DialogueConfig()

    # -- conversations ---------------------------------------------------------------

    def create_conversation(self, *, channel: str | None = None, customer_ref: str | None = None,
                            metadata: dict | None = None, history: list[tuple[str, str]] = (),
                            owner: str | None = "operator", access_token_hash: str | None = None) -> str:
        """A new open conversation. `history`: earlier (role, text) turns a client already
        had ('user'/'customer', 'assistant'/'bot'), stored as they are (guarded and
        redacted). `owner`: who created it (bot.callers); customer_ref and metadata are
        validated and PII-redacted like messages."""
        roles = {"user": "customer", "assistant": "bot", "customer": "customer", "bot": "bot"}
        channel = check_name(channel, what="channel", max_chars=64)
        customer_ref = self._redact(check_name(customer_ref, what="customer_ref"))
        metadata = self._redact_values(check_metadata(metadata))
        with self.sessions.begin() as session:
            conversation = repo.create_conversation(session, channel=channel, customer_ref=customer_ref,
                                                    meta=metadata, owner=owner, access_token_hash=access_token_hash)
            for role, text in history:
                text, original = self._clean(text)
                repo.add_message(session, conversation_id=conversation.id, role=roles[role], text=text,
                                 text_original=original)
            return conversation.id

    def _clean(self, text: str) -> tuple[str, str | None]:
        """Guard, then PII out: (the text to store and use, the sealed original if it is kept)."""
        text = check_message(text, max_chars=self.config.max_text_chars)
        redacted = self.config.redactor.redact(text)
        sealer = self.config.sealer
        return redacted.text, (sealer.seal(text) if sealer is not None and redacted.changed else None)

    def _redact(self, value: str | None) -> str | None:
        return None if value is None else self.config.redactor.redact(value).text

    def _redact_values(self, value):
        """Metadata: every string value (and key) with PII redacted."""
        if isinstance(value, dict):
            return {self._redact(k): self._redact_values(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._redact_values(v) for v in value]
        return self._redact(value) if isinstance(value, str) else value

    def _load(self, session: Session, conversation_id: str) -> Conversation:
        conversation = repo.get_conversation(session, conversation_id=conversation_id)
        if conversation is None:
            raise NotFoundError(f"no conversation {conversation_id!r}")
        return conversation

    def agent_message(self, conversation_id: str, text: str, *, agent: str) -> MessagePublic:
        """A human agent's reply. An agent writing into an open conversation takes it over."""
        text, original = self._clean(text)
        if not agent or not agent.strip():
            raise InputError("agent is empty: give the agent's name")
        agent = self._redact(check_name(agent, what="agent"))
        with self.sessions.begin() as session:
            conversation = self._load(session, conversation_id)
            if conversation.status == "closed":
                raise InputError(f"conversation {conversation_id} is closed")
            if conversation.status == "open":
                repo.set_status(session, conversation_id=conversation_id, status="escalated",
                                escalation_reason="agent_takeover")
            m = repo.add_message(session, conversation_id=conversation_id, role="agent", text=text,
                                 agent=agent.strip(), text_original=original)
            return message_public(m)

    def release(self, conversation_id: str) -> ConversationPublic:
        """Hand the conversation back to the bot."""
        with self.sessions.begin() as session:
            conversation = self._load(session, conversation_id)
            if conversation.status == "closed":
                raise InputError(f"conversation {conversation_id} is closed")
            repo.set_status(session, conversation_id=conversation_id, status="open")
            conversation.meta = {**(conversation.meta or {}), STREAK_KEY: 0}
            return conversation_public(conversation, with_messages=False)

    # -- a customer turn -------------------------------------------------------------

    def turn(self, conversation_id: str, text: str, params: GenerationParams | None = None) -> TurnResult:
        result = None
        for event in self.stream_turn(conversation_id, text, params):
            if isinstance(event, TurnResult):
                result = event
        assert result is not None  # stream_turn always ends with its result
        return result

    def stream_turn(self, conversation_id: str, text: str,
                    params: GenerationParams | None = None) -> Iterator[str | TurnResult]:
        """Yields the reply as text pieces, then the TurnResult (after storage). The steps:
        guard, sentiment + intent (_read) → the customer's turn stored, escalation decided
        (_store_customer_turn) → the answer: retrieval, then the model or the article's
        sentences (_answer) → the reply stored (_store_reply)."""
        turn = self._read(conversation_id, text, params)
        self._store_customer_turn(turn)
        # (nothing is yielded inside a transaction: a consumer that stops early loses nothing)
        if turn.held:  # a human holds it: the bot stays silent
            yield TurnResult(**turn.base, reply=None, escalate=True, escalation_reason=turn.held_reason,
                             status="escalated")
            return
        if turn.reason is not None:
            # A person takes over; meanwhile the customer gets what the articles say about it.
            found = None if policy.refusal(turn.text) else self._from_articles(
                turn.text, turn.language, upset=False, intent=turn.intent)
            yield from self._hand_over(turn, turn.reason, found=found)
            return
        answer = yield from self._answer(turn)
        if answer is None:  # no article answered, turn after turn: a person takes over
            yield from self._hand_over(turn, "no_answer", escalate_now=True)
            return
        yield self._store_reply(turn, answer)

    def _read(self, conversation_id: str, text: str, params: GenerationParams | None) -> _Turn:
        """Guard and PII out, then sentiment and intent."""
        started = time.perf_counter()
        text, original = self._clean(text)
        # One turn uses the models it started with, even if a new version is swapped in meanwhile.
        sentiment_model, intent_model, generator = self.sentiment, self.intent, self.generator
        s = sentiment_model.classify([text])[0]
        intent = intent_model.classify([text])[0] if intent_model is not None else None
        return _Turn(conversation_id=conversation_id, text=text, original=original, started=started,
                     params=params or self.config.params, generator=generator, sentiment=s, intent=intent,
                     language=s.language if s.language in prompting.TEXTS else "en")

    def _store_customer_turn(self, turn: _Turn) -> None:
        """The customer's turn, committed with its sentiment and intent; escalation decided
        from what was said (unless a person already holds the conversation)."""
        s, intent = turn.sentiment, turn.intent
        with self.sessions.begin() as session:
            conversation = self._load(session, turn.conversation_id)
            if conversation.status == "closed":
                raise InputError(f"conversation {turn.conversation_id} is closed: start a new one")
            turn.history = [(m.role, m.text, m.language, m.sentiment_label, m.sentiment_score)
                            for m in conversation.messages]
            customer = repo.add_message(
                session, conversation_id=turn.conversation_id, role="customer", text=turn.text,
                text_original=turn.original, language=s.language,
                sentiment_label=s.label, sentiment_score=s.score, sentiment_scores=s.scores,
                intent_label=intent.label if intent else None, intent_score=intent.score if intent else None)
            turn.base = dict(conversation_id=turn.conversation_id, message_id=customer.id, language=s.language,
                             sentiment={"label": s.label, "score": s.score},
                             intent=intent.public() if intent else None)
            turn.held = conversation.status == "escalated"
            turn.held_reason = conversation.escalation_reason
            if not turn.held:
                turns = [TurnSignals(t, lang or "en", label, score)
                         for role, t, lang, label, score in turn.history if role == "customer"][-3:]
                turns.append(TurnSignals(turn.text, s.language, s.label, s.score))
                turn.reason = self.policy.decide(turns)
                if turn.reason is not None:
                    self._escalate(session, conversation, turn.reason)
            turn.streak = int((conversation.meta or {}).get(STREAK_KEY, 0))

    def _answer(self, turn: _Turn) -> Iterator[str]:
        """Yields the answer's text; returns it as an _Answer: a refusal, small talk, what
        the articles say, or an honest "can't help". Returns None when that "can't help"
        would be one too many in a row (the conversation goes to a person)."""
        language = turn.language
        refused = policy.refusal(turn.text)  # harmful requests: refused without retrieval or the model
        small = prompting.small_talk(turn.text)
        if refused:
            answer = _Answer(prompting.text("refuse_self_harm" if refused == "self_harm" else "refuse", language),
                             [], "supportbot-policy")
        elif small:
            answer = _Answer(prompting.text(small, language), [], "supportbot-rules")
        else:
            found = self._from_articles(turn.text, language, upset=turn.upset, intent=turn.intent)
            if found is not None:
                turn.streak = 0
                return (yield from self._answer_from_articles(turn, found))
            turn.streak += 1
            if turn.streak >= self.policy.no_answer_turns:
                return None
            answer = _Answer(prompting.text("no_answer", language), [], "supportbot-rules")
        yield answer.text
        return answer

    def _answer_from_articles(self, turn: _Turn, found) -> Iterator[str]:
        """The chat model writes from the best article (when it writes this language and
        nothing reads like an injection), every piece checked against the sources; else,
        or when it fails or says nothing, the articles' own sentences. Returns the _Answer."""
        hits, selected, used, grounded = found
        top = hits[0]
        sources = [h.public() for h in used]
        generator, language = turn.generator, turn.language
        pieces: list[str] = []
        failed = False
        model_version = "supportbot-rules"
        # a turn or an article that reads like an injection is answered without the model
        screened = injection.suspicious(turn.text) or injection.suspicious(top.title + "\n" + top.body)
        if generator is not None and language in self.config.generate_languages and not screened:
            # every number, contact and menu path sent must be in the article or the customer's words
            said = [t for role, t, *_ in turn.history[-self.config.history_messages:] if role == "customer"]
            try:
                for piece in faithfulness.check_stream(
                        injection.guard(self._generate(generator, turn.history, turn.text, top, language, turn.upset,
                                                       turn.params)),
                        sources=[h.title + "\n" + h.body for h in used], allowed=[*said, turn.text]):
                    pieces.append(piece)
                    yield piece
                model_version = generator.name
            except GenerationError as exc:
                log.warning("generation failed, answering from the article: %s", exc)
                failed = True
        answer = "".join(pieces).strip()
        if failed or not answer:
            # What was already streamed stays (the client saw it); the article follows.
            fallback = ("\n\n" if answer else "") + grounded
            answer = (answer + fallback).strip()
            model_version = "supportbot-retrieval"
            yield fallback
        return _Answer(answer, sources, model_version)

    def _store_reply(self, turn: _Turn, answer: _Answer) -> TurnResult:
        """The bot's reply stored with its sources and model; the no-answer streak kept."""
        with self.sessions.begin() as session:
            conversation = self._load(session, turn.conversation_id)
            conversation.meta = {**(conversation.meta or {}), STREAK_KEY: turn.streak}
            latency = _ms(turn.started)
            m = repo.add_message(session, conversation_id=turn.conversation_id, role="bot", text=answer.text,
                                 language=turn.language, sources=answer.sources, model_version=answer.model_version,
                                 latency_ms=latency)
            status = conversation.status
            reply = Reply(m.id, answer.text, answer.sources)
        return TurnResult(**turn.base, reply=reply, escalate=False, escalation_reason=None, status=status,
                          model_version=answer.model_version, latency_ms=latency)

    def _hand_over(self, turn: _Turn, reason: str, *, escalate_now: bool = False,
                   found=None) -> Iterator[str | TurnResult]:
        """The hand-over message (with what the articles say, when `found`), then the
        escalated TurnResult. `escalate_now`: the escalation happens here (no_answer)
        rather than with the customer's turn."""
        with self.sessions.begin() as session:
            if escalate_now:
                self._escalate(session, self._load(session, turn.conversation_id), reason)
            reply = self._handoff_message(session, turn.conversation_id, turn.language, turn.started, found)
        yield reply.text
        yield TurnResult(**turn.base, reply=reply, escalate=True, escalation_reason=reason, status="escalated",
                         latency_ms=_ms(turn.started))

    def _from_articles(self, text: str, language: str, *, upset: bool, intent):
        """(hits, selected sentences, articles used, the reply made of them) for the turn,
        or None when no article passes the answer threshold."""
        index = self.knowledge()
        threshold = self.config.answer_threshold
        hits = [h for h in index.search(text, language=language, k=3, intent=intent) if h.score >= threshold]
        if not hits:
            return None
        # the sentences that answer this question (and an article for each further question)
        encoder = index.embedder_for(language)
        also = grounding.other_questions(text, hits[0], lambda clause: [
            h for h in index.search(clause, language=language, k=1) if h.score >= threshold])
        selected = grounding.select(text, hits, embed=encoder.embed if encoder is not None else None, also=also)
        used = list({id(x.hit): x.hit for x in selected}.values()) or [hits[0]]
        reply = (grounding.compose(selected, language=language, upset=upset, apology=prompting.text("apology", language))
                 or prompting.retrieval_answer(hits[0], language=language, upset=upset))
        return hits, selected, used, reply

    def _escalate(self, session: Session, conversation: Conversation, reason: str) -> None:
        repo.set_status(session, conversation_id=conversation.id, status="escalated", escalation_reason=reason)
        conversation.meta = {**(conversation.meta or {}), STREAK_KEY: 0}

    def _handoff_message(self, session: Session, conversation_id: str, language: str, started: float,
                         found=None) -> Reply:
        """The bot's hand-over message; with `found` (see _from_articles), what the articles
        say follows it, so the customer is not left with nothing while a person comes."""
        text, sources = prompting.text("handoff", language), []
        if found is not None:
            _, _, used, grounded = found
            text += "\n\n" + prompting.text("meanwhile", language) + ("" if language in ("zh", "ja") else " ") + grounded
            sources = [h.public() for h in used]
        m = repo.add_message(session, conversation_id=conversation_id, role="bot", text=text, language=language,
                             sources=sources, model_version="supportbot-rules", latency_ms=_ms(started))
        return Reply(m.id, text, sources)

    def _generate(self, generator: Generator, history: list[tuple], text: str, hit: Hit, language: str,
                  upset: bool, params: GenerationParams) -> Iterator[str]:
        messages = [{"role": "system", "content": prompting.system_message([hit], language=language, upset=upset)}]
        for role, content, *_ in history[-self.config.history_messages:]:
            messages.append({"role": "user" if role == "customer" else "assistant", "content": content})
        messages.append({"role": "user", "content": text})
        budget = generator.context_tokens - params.max_tokens
        messages = prompting.fit_context(messages, generator.count_tokens, budget)
        yield from generator.stream(messages, params)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
