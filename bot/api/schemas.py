"""Request and response bodies of the HTTP API (API.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    type: str
    message: str


class ErrorPublic(BaseModel):
    error: ErrorBody


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
