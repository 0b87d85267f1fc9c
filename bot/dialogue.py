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
from core.errors import InputError, NotFoundError
from bot.escalation import EscalationPolicy, TurnSignals
from bot.generation import GenerationError, GenerationParams, Generator
from bot.guard import check_message, check_metadata, check_name
from bot.intent import IntentService
from bot.redaction import Redactor
from bot.sealing import Sealer
from bot.retrieval import Hit, KnowledgeIndex
from bot.sentiment import SentimentService
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

    def public(self) -> dict:
        return {"message_id": self.message_id, "text": self.text, "sources": self.sources}


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

    def public(self) -> dict:
        return {"conversation_id": self.conversation_id, "message_id": self.message_id,
                "sentiment": self.sentiment, "intent": self.intent,
                "reply": self.reply.public() if self.reply else None, "escalate": self.escalate,
                "escalation_reason": self.escalation_reason, "status": self.status}


def message_public(m: Message) -> dict:
    out = {"id": m.id, "role": m.role, "text": m.text, "created_at": m.created_at.isoformat(),
           "language": m.language}
    if m.sentiment_label is not None:
        out["sentiment"] = {"label": m.sentiment_label, "score": m.sentiment_score}
    if m.intent_label is not None:
        out["intent"] = {"label": m.intent_label, "score": m.intent_score}
    if m.role == "bot":
        out["sources"] = list(m.sources or [])
        out["model_version"] = m.model_version
    if m.agent:
        out["agent"] = m.agent
    return out


def conversation_public(c: Conversation, *, with_messages: bool = True) -> dict:
    out = {"id": c.id, "status": c.status, "channel": c.channel, "customer_ref": c.customer_ref,
           "metadata": {k: v for k, v in (c.meta or {}).items() if k != STREAK_KEY},
           "escalation_reason": c.escalation_reason, "created_at": c.created_at.isoformat(),
           "updated_at": c.updated_at.isoformat()}
    if with_messages:
        out["messages"] = [message_public(m) for m in c.messages]
    return out


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

    def agent_message(self, conversation_id: str, text: str, *, agent: str) -> dict:
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

    def release(self, conversation_id: str) -> dict:
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
        """Yields the reply as text pieces, then the TurnResult (after storage)."""
        started = time.perf_counter()
        text, original = self._clean(text)
        params = params or self.config.params
        # One turn uses the models it started with, even if a new version is swapped in meanwhile.
        sentiment_model, intent_model, generator = self.sentiment, self.intent, self.generator
        s = sentiment_model.classify([text])[0]
        intent = intent_model.classify([text])[0] if intent_model is not None else None
        language = s.language if s.language in prompting.TEXTS else "en"
        sentiment = {"label": s.label, "score": s.score}

        # 1. store the customer's turn; decide on escalation from what was said
        with self.sessions.begin() as session:
            conversation = self._load(session, conversation_id)
            if conversation.status == "closed":
                raise InputError(f"conversation {conversation_id} is closed: start a new one")
            history = [(m.role, m.text, m.language, m.sentiment_label, m.sentiment_score)
                       for m in conversation.messages]
            customer = repo.add_message(
                session, conversation_id=conversation_id, role="customer", text=text, text_original=original,
                language=s.language,
                sentiment_label=s.label, sentiment_score=s.score, sentiment_scores=s.scores,
                intent_label=intent.label if intent else None, intent_score=intent.score if intent else None)
            base = dict(conversation_id=conversation_id, message_id=customer.id, language=s.language,
                        sentiment=sentiment, intent=intent.public() if intent else None)
            held = conversation.status == "escalated"
            held_reason = conversation.escalation_reason
            reason = None
            if not held:
                turns = [TurnSignals(t, lang or "en", label, score)
                         for role, t, lang, label, score in history if role == "customer"][-3:]
                turns.append(TurnSignals(text, s.language, s.label, s.score))
                reason = self.policy.decide(turns)
                if reason is not None:
                    self._escalate(session, conversation, reason)
            streak = int((conversation.meta or {}).get(STREAK_KEY, 0))
        # (nothing is yielded inside a transaction: a consumer that stops early loses nothing)
        if held:  # a human holds it: the bot stays silent
            yield TurnResult(**base, reply=None, escalate=True, escalation_reason=held_reason, status="escalated")
            return
        if reason is not None:
            # A person takes over; meanwhile the customer gets what the articles say about it.
            found = None if policy.refusal(text) else self._from_articles(text, language, upset=False, intent=intent)
            with self.sessions.begin() as session:
                handoff = self._handoff_message(session, conversation_id, language, started, found)
            yield handoff.text
            yield TurnResult(**base, reply=handoff, escalate=True, escalation_reason=reason, status="escalated",
                             latency_ms=_ms(started))
            return

        # 2. answer: a refusal, small talk, an article, or an honest "can't help"
        upset = s.label == "negative"
        hits: list[Hit] = []
        refused = policy.refusal(text)  # harmful requests: refused without retrieval or the model
        small = prompting.small_talk(text)
        model_version = "supportbot-rules"
        if refused:
            answer = prompting.text("refuse_self_harm" if refused == "self_harm" else "refuse", language)
            sources, model_version = [], "supportbot-policy"
            yield answer
        elif small:
            answer, sources = prompting.text(small, language), []
            yield answer
        else:
            found = self._from_articles(text, language, upset=upset, intent=intent)
            if found is None:
                streak += 1
                if streak >= self.policy.no_answer_turns:
                    with self.sessions.begin() as session:
                        conversation = self._load(session, conversation_id)
                        self._escalate(session, conversation, "no_answer")
                        reply = self._handoff_message(session, conversation_id, language, started)
                    yield reply.text
                    yield TurnResult(**base, reply=reply, escalate=True, escalation_reason="no_answer",
                                     status="escalated", latency_ms=_ms(started))
                    return
                answer, sources = prompting.text("no_answer", language), []
                yield answer
            else:
                streak = 0
                hits, selected, used, grounded = found
                top = hits[0]
                sources = [h.public() for h in used]
                pieces: list[str] = []
                failed = False
                # a turn or an article that reads like an injection is answered without the model
                screened = injection.suspicious(text) or injection.suspicious(top.title + "\n" + top.body)
                if generator is not None and language in self.config.generate_languages and not screened:
                    # every number, contact and menu path sent must be in the article or the customer's words
                    said = [t for role, t, *_ in history[-self.config.history_messages:] if role == "customer"]
                    try:
                        for piece in faithfulness.check_stream(
                                injection.guard(self._generate(generator, history, text, top, language, upset, params)),
                                sources=[h.title + "\n" + h.body for h in used], allowed=[*said, text]):
                            pieces.append(piece)
                            yield piece
                        model_version = generator.name
                    except GenerationError as exc:
                        log.warning("generation failed, answering from the article: %s", exc)
                        failed = True
                answer = "".join(pieces).strip()
                if failed or not answer:
                    # What was already streamed stays (the client saw it); the article follows.
                    fallback = grounded
                    fallback = ("\n\n" if answer else "") + fallback
                    answer = (answer + fallback).strip()
                    model_version = "supportbot-retrieval"
                    yield fallback

        # 3. store the reply
        with self.sessions.begin() as session:
            conversation = self._load(session, conversation_id)
            conversation.meta = {**(conversation.meta or {}), STREAK_KEY: streak}
            latency = _ms(started)
            m = repo.add_message(session, conversation_id=conversation_id, role="bot", text=answer,
                                 language=language, sources=sources, model_version=model_version,
                                 latency_ms=latency)
            status = conversation.status
            reply = Reply(m.id, answer, sources)
        yield TurnResult(**base, reply=reply, escalate=False, escalation_reason=None, status=status,
                         model_version=model_version, latency_ms=latency)

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
