"""Records a fine-tune run (and the model version it produces) in the database.

Recording is best effort: a training run never fails because the database is down; it
logs a warning and goes on.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class RunRecorder:
    session_factory: object | None = None
    run_id: str | None = None
    task: str = ""
    models_dir: object | None = None  # settings.models_path: version paths are stored relative to it
    _last_progress: float = 0.0

    @classmethod
    def start(cls, settings, *, task: str, kind: str, config: dict, data: list, output_dir: str,
              resume: bool = False) -> "RunRecorder":
        if settings is None or os.environ.get("RANK", "0") != "0":
            # under `accelerate launch` / torchrun only the first process records the run
            return cls(task=task)
        try:
            from storage.db import make_engine, make_session_factory, upgrade
            from storage.repositories import finetune_runs

            url = settings.resolved_database_url
            upgrade(url)
            factory = make_session_factory(make_engine(url, busy_timeout_ms=settings.sqlite_busy_timeout_ms))
            with factory() as session:
                # --resume continues the run a kill left 'running' for the same output.
                previous = [r for r in finetune_runs.list_runs(session, task=task, status="running")
                            if r.output_dir == output_dir] if resume else []
                run = previous[0] if previous else finetune_runs.start_run(
                    session, task=task, kind=kind, config=config, data=data, output_dir=output_dir)
                session.commit()
                return cls(factory, run.id, task, settings.models_path)
        except Exception as exc:  # noqa: BLE001 - best effort, see module docstring
            log.warning("not recording this run in the database: %s", exc)
            return cls(task=task)

    def __enter__(self) -> "RunRecorder":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is not None:
            self.finish(metrics={}, version="", base="", path="", error=f"{exc_type.__name__}: {exc}")
        return False

    def progress(self, fraction: float) -> None:
        fraction = min(1.0, max(0.0, fraction))  # a resumed run may be given fewer steps than it has done
        if self.session_factory is None or time.monotonic() - self._last_progress < 10:
            return
        self._last_progress = time.monotonic()
        try:
            from storage.repositories import finetune_runs

            with self.session_factory() as session:
                finetune_runs.update_progress(session, run_id=self.run_id, progress=fraction)
                session.commit()
        except Exception as exc:  # noqa: BLE001
            log.warning("could not record progress: %s", exc)

    def finish(self, *, metrics: dict, version: str, base: str, path: str, error: str | None = None) -> None:
        if self.session_factory is None:
            return
        try:
            from storage.repositories import finetune_runs, model_versions

            with self.session_factory() as session:
                finetune_runs.finish_run(session, run_id=self.run_id, status="failed" if error else "succeeded",
                                         metrics=metrics, error=error)
                if not error:
                    stored = model_versions.path_to_store(path, self.models_dir) if self.models_dir else path
                    model_versions.create_model_version(session, task=self.task, name=version, base_model=base,
                                                        path=stored, metrics=metrics, finetune_run_id=self.run_id)
                session.commit()
        except Exception as exc:  # noqa: BLE001
            log.warning("could not record the finished run: %s", exc)
