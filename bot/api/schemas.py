"""Request and response bodies of the HTTP API (API.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer


class ErrorBody(BaseModel):
    type: str
    message: str


class ErrorPublic(BaseModel):
    error: ErrorBody


class OpenAIErrorBody(BaseModel):
    """An error on the OpenAI-compatible endpoints (/v1/chat/completions, /v1/models),
    shaped as OpenAI's: `code` is supportbot's own error type (e.g. invalid_json,
    model_not_found, rate_limited), `param` the request field at fault, when one is."""
    message: str
    type: Literal["invalid_request_error", "authentication_error", "permission_error", "not_found_error",
                  "rate_limit_error", "server_error"]
    param: str | None
    code: str | None


class OpenAIErrorPublic(BaseModel):
    error: OpenAIErrorBody


class SentimentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Length limits are checked in the route, so that too many/too long gives 413.
    texts: list[str] = Field(..., description="1..256 texts, each 1..5000 characters")
    explain: bool = False


class TokenWeight(BaseModel):
    token: str
    weight: float


class SentimentScores(BaseModel):
    model_config = ConfigDict(extra="allow")
    negative: float = 0.0
    neutral: float = 0.0
    positive: float = 0.0


class SentimentResultPublic(BaseModel):
    label: str
    score: float
    scores: SentimentScores
    language: str
    explanation: list[TokenWeight] | None = None


class SentimentPublic(BaseModel):
    model: str
    results: list[SentimentResultPublic]


class HealthPublic(BaseModel):
    status: str
    database: str
    models: dict


# -- chat completions (OpenAI-compatible) and conversations -----------------------------


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """Text content; OpenAI's list-of-parts form keeps only the text parts."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


class ChatCompletionRequest(BaseModel):
    # OpenAI clients send options we do not use (seed, presence_penalty, ...): ignored.
    model_config = ConfigDict(extra="ignore")
    model: str | None = Field(None, description="'supportbot' (the customer-service pipeline, the default) "
                                                "or a chat model from /v1/models (plain completion, not stored)")
    messages: list[ChatMessageIn] = Field(..., min_length=1, max_length=200)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, le=1, description="only 1 is supported")
    user: str | None = Field(None, max_length=255)
    conversation_id: str | None = Field(None, max_length=64, description="continue a stored conversation")

    @field_validator("stop")
    @classmethod
    def _stops(cls, v):
        stops = [v] if isinstance(v, str) else (v or [])
        if len(stops) > 4 or any(not s or len(s) > 64 for s in stops):
            raise ValueError("stop takes up to 4 non-empty sequences of at most 64 characters")
        return stops


class Source(BaseModel):
    id: str
    title: str
    score: float


class LabelScore(BaseModel):
    label: str
    score: float


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: str | None = Field(None, max_length=64)
    customer_ref: str | None = Field(None, max_length=255)
    metadata: dict[str, Any] | None = None


class ConversationId(BaseModel):
    id: str


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


class AgentMessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    agent: str = Field(..., min_length=1, max_length=255)


class ReplyPublic(BaseModel):
    message_id: str
    text: str
    sources: list[Source]


class TurnPublic(BaseModel):
    conversation_id: str
    message_id: str
    sentiment: LabelScore
    intent: LabelScore | None = None
    reply: ReplyPublic | None
    escalate: bool
    escalation_reason: str | None
    status: Literal["open", "escalated", "closed"]


class MessagePublic(BaseModel):
    """A stored message: in GET /v1/conversations/{id}, from POST .../agent-messages, and
    what the UI shows (bot.dialogue.message_public builds it from the database row). Keys
    a message does not have are left out: `intent` on a turn no intent model read,
    `sources` and `model_version` on all but the bot's replies, `agent` on all but an
    agent's; `sentiment` and `language` are there, null when unknown."""
    id: str
    role: Literal["customer", "bot", "agent"]
    text: str
    created_at: str
    sentiment: LabelScore | None = None
    language: str | None = None
    intent: LabelScore | None = None
    sources: list[Source] | None = None
    model_version: str | None = None
    agent: str | None = None

    @model_serializer(mode="wrap")
    def _leave_out_what_it_lacks(self, handler):
        data = handler(self)
        for key in ("intent", "sources", "model_version", "agent"):
            if key not in self.model_fields_set:
                data.pop(key, None)
        return data


class ConversationPublic(BaseModel):
    """A conversation (GET /v1/conversations/{id}, the listing, release; the UI). `messages`
    is null in the listing and from release; `metadata` is what the client gave, without
    the dialogue's own keys. Built by bot.dialogue.conversation_public."""
    id: str
    status: Literal["open", "escalated", "closed"]
    created_at: str
    escalation_reason: str | None = None
    messages: list[MessagePublic] | None = None
    channel: str | None = None
    customer_ref: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    updated_at: str


class ConversationsPublic(BaseModel):
    data: list[ConversationPublic]
    count: int
    next_cursor: str | None


# -- model versions (bot.versions) ------------------------------------------------------


class ModelVersionPublic(BaseModel):
    id: str
    task: Literal["sentiment", "intent", "chat"]
    route: str
    name: str
    status: Literal["candidate", "active", "retired", "rejected"]
    path: str | None
    base_model: str | None
    metrics: dict[str, Any]
    created_at: str
    activated_at: str | None


class RouteStatePublic(BaseModel):
    active: str | None = Field(description="name of the active version; None: the configured default serves")
    configured_default: str | None


class TaskVersionsPublic(BaseModel):
    routes: dict[str, RouteStatePublic]
    versions: list[ModelVersionPublic]


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message_id: str = Field(..., min_length=1, max_length=64)
    rating: Literal["up", "down"]
    comment: str | None = Field(None, max_length=2000)
    corrected_reply: str | None = None
    corrected_sentiment: str | None = Field(None, max_length=64)
    corrected_intent: str | None = Field(None, max_length=64)


class FeedbackId(BaseModel):
    id: str


class FeedbackReviewPublic(BaseModel):
    id: str
    message_id: str
    conversation_id: str
    role: Literal["customer", "bot", "agent"]
    text: str
    rating: Literal["up", "down"]
    comment: str | None
    corrected_reply: str | None
    corrected_sentiment: str | None
    corrected_intent: str | None
    submitted_by: str | None
    review_status: Literal["signal", "pending", "confirmed", "rejected"]
    confirmed_by: str | None
    created_at: str


class FeedbackReviewsPublic(BaseModel):
    data: list[FeedbackReviewPublic]
    count: int


# ---- the review queue (bot.review_queue) ----------------------------------------------

ReviewTask = Literal["sentiment", "intent"]


class ReviewReasonPublic(BaseModel):
    code: Literal["low_confidence", "possible_new_intent", "outcome_disagrees", "classifiers_disagree",
                  "customer_disagrees"]
    weight: float
    detail: str


class ReviewItemPublic(BaseModel):
    message_id: str  # the customer turn
    conversation_id: str
    task: ReviewTask
    text: str  # as stored: PII-redacted
    language: str | None
    label: str | None  # the model's label
    confidence: float | None  # the model's score for it
    priority: float  # higher first: uncertainty (0..1) plus the reasons' weights
    reasons: list[ReviewReasonPublic]
    created_at: str


class ReviewItemsPublic(BaseModel):
    data: list[ReviewItemPublic]
    count: int
    next_cursor: str | None


class ReviewConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: ReviewTask


class ReviewCorrect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: ReviewTask
    label: str = Field(..., min_length=1, max_length=64)


class ReviewDecisionPublic(BaseModel):
    feedback_id: str  # the feedback row it was stored as (GET /v1/feedback's rows, POST /v1/feedback's id)
    message_id: str
    task: ReviewTask
    label: str  # the label that now teaches the model
    predicted: str | None  # the model's label
    rating: Literal["up", "down"]  # up: confirmed as predicted; down: corrected
    review_status: Literal["confirmed"]
    confirmed_by: str
