from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from storage.models import ModelVersion
from storage.repositories import finetune_runs
from storage.repositories import model_versions as versions
from storage.repositories.model_versions import DuplicateModelVersion


def _create(session, name, task="sentiment", **kwargs):
    return versions.create_model_version(
        session, task=task, name=name, path=f"runs/{name}", **kwargs
    )


def test_create_and_get(session):
    run = finetune_runs.start_run(session, task="sentiment", kind="classifier")
    created = _create(
        session,
        "sent-v1",
        base_model="distilbert-base-uncased",
        metrics={"eval_f1": 0.91},
        finetune_run_id=run.id,
    )
    session.commit()
    session.expunge_all()

    loaded = versions.get_model_version(session, version_id=created.id)
    assert (loaded.task, loaded.name, loaded.status) == ("sentiment", "sent-v1", "candidate")
    assert loaded.metrics == {"eval_f1": 0.91}
    assert loaded.finetune_run.id == run.id
    assert loaded.activated_at is None
    assert versions.get_model_version_by_name(session, task="sentiment", name="sent-v1").id == (
        created.id
    )
    assert versions.get_model_version(session, version_id="nope") is None
    assert versions.get_model_version_by_name(session, task="intent", name="sent-v1") is None


def test_names_are_unique_per_task(session):
    _create(session, "v1")
    with pytest.raises(DuplicateModelVersion, match="exists already"):
        _create(session, "v1")
    _create(session, "v1", task="intent")  # same name, other task: fine


def test_create_rejects_active_status_and_unknown_task(session):
    with pytest.raises(ValueError, match="activate"):
        _create(session, "v1", status="active")
    with pytest.raises(ValueError, match="task"):
        _create(session, "v1", task="translation")


def test_activate_retires_the_previous_active_version_of_the_same_task(session_factory):
    with session_factory() as session:
        v1 = _create(session, "v1")
        v2 = _create(session, "v2")
        intent = _create(session, "i1", task="intent")
        versions.activate_model_version(session, version_id=v1.id)
        versions.activate_model_version(session, version_id=intent.id)
        session.commit()

    with session_factory() as session:
        activated = versions.activate_model_version(session, version_id=v2.id)
        assert activated.status == "active" and activated.activated_at is not None
        session.commit()

    with session_factory() as session:
        statuses = {v.name: v.status for v in versions.list_model_versions(session)}
        assert statuses == {"v1": "retired", "v2": "active", "i1": "active"}
        assert versions.get_active_model_version(session, task="sentiment").id == v2.id
        assert versions.get_active_model_version(session, task="intent").id == intent.id
        assert versions.get_active_model_version(session, task="chat") is None


def test_activation_is_atomic_with_the_callers_transaction(session_factory):
    with session_factory() as session:
        v1 = _create(session, "v1")
        v2 = _create(session, "v2")
        versions.activate_model_version(session, version_id=v1.id)
        session.commit()
    with session_factory() as session:
        versions.activate_model_version(session, version_id=v2.id)
        session.rollback()  # the caller changes its mind
    with session_factory() as session:
        assert versions.get_active_model_version(session, task="sentiment").id == v1.id
        assert versions.get_model_version(session, version_id=v2.id).status == "candidate"


def test_activating_the_active_version_changes_nothing(session):
    v1 = _create(session, "v1")
    first = versions.activate_model_version(session, version_id=v1.id).activated_at
    again = versions.activate_model_version(session, version_id=v1.id)
    assert (again.status, again.activated_at) == ("active", first)


def test_activate_missing_version_is_none(session):
    assert versions.activate_model_version(session, version_id="nope") is None


def test_the_database_allows_one_active_version_per_task(session):
    _create(session, "v1")
    _create(session, "v2")
    session.commit()
    with pytest.raises(IntegrityError):
        session.execute(sa.update(ModelVersion).values(status="active"))
        session.flush()
    session.rollback()


def test_rollback_reactivates_the_previously_active_version(session):
    v1, v2, v3 = (_create(session, name) for name in ("v1", "v2", "v3"))
    assert versions.rollback_model_version(session, task="sentiment") is None  # nothing yet
    for version in (v1, v2):
        versions.activate_model_version(session, version_id=version.id)

    back = versions.rollback_model_version(session, task="sentiment")

    assert back.id == v1.id
    assert versions.get_active_model_version(session, task="sentiment").id == v1.id
    assert versions.get_model_version(session, version_id=v2.id).status == "retired"
    assert versions.get_model_version(session, version_id=v3.id).status == "candidate"


def test_list_model_versions_by_task_and_status(session):
    _create(session, "s1")
    _create(session, "i1", task="intent")
    rejected = _create(session, "s2", status="rejected")
    assert [v.name for v in versions.list_model_versions(session, task="intent")] == ["i1"]
    assert [v.id for v in versions.list_model_versions(session, status="rejected")] == [
        rejected.id
    ]
    assert len(versions.list_model_versions(session)) == 3


def test_deleting_a_run_keeps_its_model_versions(session):
    run = finetune_runs.start_run(session, task="sentiment", kind="classifier")
    version = _create(session, "v1", finetune_run_id=run.id)
    session.commit()
    session.execute(sa.text("DELETE FROM finetune_runs WHERE id = :id"), {"id": run.id})
    session.commit()
    session.expunge_all()
    kept = versions.get_model_version(session, version_id=version.id)
    assert kept is not None and kept.finetune_run_id is None  # ON DELETE SET NULL
