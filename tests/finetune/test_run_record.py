from __future__ import annotations

from core.config import settings_with
from finetune.run_record import RunRecorder
from storage.db import make_engine, make_session_factory
from storage.repositories import finetune_runs, model_versions


def _runs(settings):
    with make_session_factory(make_engine(settings.resolved_database_url))() as session:
        return [(r.id, r.status, r.output_dir) for r in finetune_runs.list_runs(session)]


def test_resume_continues_the_killed_runs_record(tmp_path):
    settings = settings_with(home=tmp_path)
    kwargs = dict(task="sentiment", kind="classifier", config={}, data=[], output_dir="runs/x")
    killed = RunRecorder.start(settings, **kwargs)  # never finished: the process was killed
    other = RunRecorder.start(settings, **{**kwargs, "output_dir": "runs/y"})
    resumed = RunRecorder.start(settings, **kwargs, resume=True)
    assert resumed.run_id == killed.run_id != other.run_id
    resumed.finish(metrics={"accuracy": 0.9}, version="v1", base="minilm-l6", path="runs/x")
    runs = {run_id: status for run_id, status, _ in _runs(settings)}
    assert runs == {killed.run_id: "succeeded", other.run_id: "running"}
    with make_session_factory(make_engine(settings.resolved_database_url))() as session:
        (version,) = model_versions.list_model_versions(session, task="sentiment")
        assert version.name == "v1" and version.finetune_run_id == killed.run_id


def test_without_resume_a_new_run_is_recorded(tmp_path):
    settings = settings_with(home=tmp_path)
    kwargs = dict(task="intent", kind="classifier", config={}, data=[], output_dir="runs/x")
    first = RunRecorder.start(settings, **kwargs)
    second = RunRecorder.start(settings, **kwargs)
    assert first.run_id != second.run_id and len(_runs(settings)) == 2


def test_an_exception_inside_the_recorder_marks_the_run_failed(tmp_path):
    settings = settings_with(home=tmp_path)
    recorder = RunRecorder.start(settings, task="intent", kind="classifier", config={}, data=[], output_dir="o")
    try:
        with recorder:
            raise RuntimeError("out of memory")
    except RuntimeError:
        pass
    ((_, status, _),) = _runs(settings)
    assert status == "failed"
