"""POST /v1/sentiment."""

from __future__ import annotations

from fastapi import APIRouter

from bot.api.auth import CallerDep
from bot.api.deps import SentimentDep, SessionDep, SettingsDep
from bot.api.schemas import SentimentPublic, SentimentRequest
from bot.guard import check_texts
from bot.prometheus import SENTIMENT_BATCH, SENTIMENT_TEXTS
from storage.repositories.predictions import PredictionRecord, log_predictions

router = APIRouter(prefix="/v1", tags=["sentiment"])


@router.post("/sentiment", response_model=SentimentPublic, response_model_exclude_none=True)
def classify(body: SentimentRequest, sentiment: SentimentDep, session: SessionDep, settings: SettingsDep,
             _caller: CallerDep):
    texts = check_texts(body.texts, max_texts=settings.max_texts_per_request, max_chars=settings.max_text_chars)
    results = sentiment.classify(texts, explain=body.explain)
    SENTIMENT_BATCH.observe(len(results))
    for r in results:
        SENTIMENT_TEXTS.labels(r.label, r.language).inc()
    log_predictions(session, task="sentiment", model_version=sentiment.version,
                    records=[PredictionRecord(r.label, r.score, len(t), r.language) for r, t in zip(results, texts)])
    return {"model": sentiment.version, "results": [r.public() for r in results]}
