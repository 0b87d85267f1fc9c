from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from storage.models import Prediction, utcnow
from storage.repositories import predictions
from storage.repositories.predictions import PredictionRecord


def test_log_predictions_bulk_inserts_a_batch(session):
    records = [
        PredictionRecord(label="negative", score=0.91, text_chars=42, language="en"),
        PredictionRecord(label="positive", score=0.77, text_chars=7, language="zh"),
        PredictionRecord(label="neutral", score=0.5, text_chars=1),
    ]
    assert predictions.log_predictions(
        session, task="sentiment", model_version="sentiment-en", records=records
    ) == 3
    session.commit()
    session.expunge_all()

    logged = predictions.list_predictions(session, task="sentiment")
    assert sorted((p.label, p.score, p.text_chars, p.language) for p in logged) == sorted(
        (r.label, r.score, r.text_chars, r.language) for r in records
    )
    assert {p.model_version for p in logged} == {"sentiment-en"}
    assert len({p.id for p in logged}) == 3


def test_no_raw_text_is_kept():
    columns = set(Prediction.__table__.columns.keys())
    assert not columns & {"text", "texts", "input", "body", "content"}


def test_a_full_request_batch_is_logged(session):
    batch = [PredictionRecord(label="positive", score=0.6, text_chars=i) for i in range(256)]
    assert predictions.log_predictions(
        session, task="intent", model_version="intent-v1", records=batch
    ) == 256
    assert session.scalar(sa.select(sa.func.count()).select_from(Prediction)) == 256


def test_empty_batch_logs_nothing(session):
    assert predictions.log_predictions(session, task="sentiment", model_version="x", records=[]) == 0


def test_only_classifier_tasks(session):
    record = PredictionRecord(label="x", score=1.0, text_chars=1)
    with pytest.raises(ValueError, match="task"):
        predictions.log_predictions(session, task="chat", model_version="x", records=[record])


def test_list_predictions_filters(session):
    record = PredictionRecord(label="x", score=1.0, text_chars=1)
    predictions.log_predictions(session, task="sentiment", model_version="s", records=[record])
    predictions.log_predictions(session, task="intent", model_version="i", records=[record] * 3)
    assert len(predictions.list_predictions(session)) == 4
    assert len(predictions.list_predictions(session, task="intent")) == 3
    assert len(predictions.list_predictions(session, limit=2)) == 2
    assert predictions.list_predictions(session, since=utcnow() + timedelta(hours=1)) == []
