from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from storage.models import FinetuneRun
from storage.repositories import finetune_runs as runs

DATA = [
    {"path": "data/train.csv", "weight": 1.0, "sha256": "ab" * 32, "rows": 800},
    {"path": "data/extra.jsonl", "weight": 0.5, "sha256": "cd" * 32, "rows": None},
]


def test_start_run(session):
    run = runs.start_run(
        session,
        task="sentiment",
        kind="classifier",
        config={"epochs": 3, "lr": 2e-4, "qlora": True},
        data=DATA,
        output_dir="runs/x",
    )
    session.commit()
    session.expunge_all()

    loaded = runs.get_run(session, run_id=run.id)
    assert (loaded.task, loaded.kind, loaded.status) == ("sentiment", "classifier", "running")
    assert loaded.config == {"epochs": 3, "lr": 2e-4, "qlora": True}
    assert loaded.data == DATA
    assert (loaded.progress, loaded.metrics, loaded.finished_at) == (0.0, {}, None)
    assert loaded.started_at.tzinfo is not None


def test_run_data_may_also_be_a_mapping(session):
    data = {"train": {"path": "train.csv", "sha256": "ab" * 32}}
    run = runs.start_run(session, task="intent", kind="classifier", data=data)
    session.commit()
    session.expunge_all()
    assert runs.get_run(session, run_id=run.id).data == data
    assert runs.start_run(session, task="intent", kind="classifier").data == []


def test_start_run_validates_task_and_kind(session):
    with pytest.raises(ValueError, match="task"):
        runs.start_run(session, task="vision", kind="classifier")
    with pytest.raises(ValueError, match="kind"):
        runs.start_run(session, task="chat", kind="rlhf")


def test_update_progress_merges_metrics(session):
    run = runs.start_run(session, task="chat", kind="chat")
    runs.update_progress(session, run_id=run.id, progress=0.25, metrics={"loss": 2.1})
    runs.update_progress(session, run_id=run.id, progress=0.5, metrics={"eval_loss": 1.9})
    session.commit()
    session.expunge_all()

    loaded = runs.get_run(session, run_id=run.id)
    assert loaded.progress == 0.5
    assert loaded.metrics == {"loss": 2.1, "eval_loss": 1.9}


@pytest.mark.parametrize("progress", [-0.1, 1.01])
def test_update_progress_rejects_out_of_range(session, progress):
    run = runs.start_run(session, task="chat", kind="chat")
    with pytest.raises(ValueError, match="progress"):
        runs.update_progress(session, run_id=run.id, progress=progress)


def test_the_database_rejects_out_of_range_progress(session):
    run = runs.start_run(session, task="chat", kind="chat")
    session.commit()
    with pytest.raises(IntegrityError):
        session.execute(sa.update(FinetuneRun).where(FinetuneRun.id == run.id).values(progress=2))
        session.flush()
    session.rollback()


def test_finish_run(session):
    run = runs.start_run(session, task="intent", kind="classifier")
    runs.update_progress(session, run_id=run.id, progress=0.9, metrics={"loss": 0.3})
    finished = runs.finish_run(
        session, run_id=run.id, status="succeeded", metrics={"eval_f1": 0.87}
    )
    assert finished.status == "succeeded"
    assert finished.progress == 1.0
    assert finished.metrics == {"loss": 0.3, "eval_f1": 0.87}
    assert finished.finished_at >= finished.started_at

    with pytest.raises(ValueError, match="finished"):
        runs.update_progress(session, run_id=run.id, progress=0.1)


def test_failed_run_keeps_its_error_and_progress(session):
    run = runs.start_run(session, task="chat", kind="chat")
    runs.update_progress(session, run_id=run.id, progress=0.4)
    failed = runs.finish_run(session, run_id=run.id, status="failed", error="CUDA out of memory")
    assert (failed.status, failed.error, failed.progress) == ("failed", "CUDA out of memory", 0.4)


def test_finish_run_rejects_running_as_an_end_status(session):
    run = runs.start_run(session, task="chat", kind="chat")
    with pytest.raises(ValueError, match="status"):
        runs.finish_run(session, run_id=run.id, status="running")


def test_missing_run_is_none(session):
    assert runs.get_run(session, run_id="nope") is None
    assert runs.update_progress(session, run_id="nope", progress=0.5) is None
    assert runs.finish_run(session, run_id="nope", status="killed") is None


def test_list_runs(session):
    a = runs.start_run(session, task="sentiment", kind="classifier")
    b = runs.start_run(session, task="chat", kind="chat")
    runs.finish_run(session, run_id=a.id, status="killed")
    assert {r.id for r in runs.list_runs(session)} == {a.id, b.id}
    assert [r.id for r in runs.list_runs(session, task="chat")] == [b.id]
    assert [r.id for r in runs.list_runs(session, status="killed")] == [a.id]
