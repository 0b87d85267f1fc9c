"""The Models & training tab (admin only): fine-tune runs with progress and loss curves,
activating / rolling back model versions, starting a retrain, and the knowledge base."""

from __future__ import annotations

import io
import json
import threading
import time
from contextlib import redirect_stderr
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from bot import versions
from bot.knowledge import Article, _article, import_articles, read_articles
from bot.runtime import Runtime
from storage.models import TASKS
from storage.repositories import finetune_runs, kb_articles
from storage.repositories.model_versions import list_model_versions
from ui.auth import Access
from ui.common import esc, require, uploaded_file, user_errors, when
from ui.dashboard import VERSION_COLUMNS, versions_table

RUN_COLUMNS = ["started", "task", "kind", "status", "progress", "finished", "metrics", "output", "id"]
KB_COLUMNS = ["id", "title", "language", "tags", "updated"]
POLL_S = 5.0


# ---- fine-tune runs -----------------------------------------------------------------------
def runs_table(runtime: Runtime) -> tuple[list[list], list[tuple[str, str]]]:
    with runtime.sessions() as session:
        runs = finetune_runs.list_runs(session, limit=100)
        rows, choices = [], []
        for r in runs:
            metrics = {k: round(v, 4) for k, v in (r.metrics or {}).items() if isinstance(v, (int, float))}
            rows.append([when(r.started_at), r.task, r.kind, r.status, f"{r.progress:.0%}", when(r.finished_at),
                         ", ".join(f"{k}={v}" for k, v in list(metrics.items())[:4]), r.output_dir or "", r.id])
            choices.append((f"{when(r.started_at)} {r.task} {r.kind} · {r.status} {r.progress:.0%}", r.id))
    return rows, choices


def read_train_log(output_dir: str | None) -> pd.DataFrame:
    """[step, series, value] from a run's train_log.jsonl (loss, eval_loss)."""
    points = []
    path = Path(output_dir) / "train_log.jsonl" if output_dir else None
    if path is not None and path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written
            for series in ("loss", "eval_loss"):
                if isinstance(entry.get(series), (int, float)) and "step" in entry:
                    points.append({"step": entry["step"], "series": series, "value": entry[series]})
    return pd.DataFrame(points, columns=["step", "series", "value"])


def run_details(runtime: Runtime, run_id: str | None) -> tuple[str, pd.DataFrame]:
    if not run_id:
        return "", read_train_log(None)
    with runtime.sessions() as session:
        r = finetune_runs.get_run(session, run_id=run_id)
        if r is None:
            return "No such run.", read_train_log(None)
        text = (f"**{esc(r.task)} / {esc(r.kind)}** · {esc(r.status)} · progress {r.progress:.0%} · started "
                f"{esc(when(r.started_at))}" + (f" · finished {esc(when(r.finished_at))}" if r.finished_at else "")
                + (f"\n\nError: `{esc(r.error)}`" if r.error else "")
                + (f"\n\nMetrics: `{esc(json.dumps(r.metrics))}`" if r.metrics else ""))
        return text, read_train_log(r.output_dir)


# ---- retrain in the background ------------------------------------------------------------
class RetrainJob:
    """One `retrain(runtime)` at a time per process, in a thread; its log lines kept."""

    def __init__(self):
        self.thread: threading.Thread | None = None
        self.lines: list[str] = []
        self.started: datetime | None = None
        self.finished: datetime | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self, runtime: Runtime, *, dry_run: bool) -> None:
        if self.running:
            raise gr.Error("A retrain is already running.")
        self.lines, self.started, self.finished = [], datetime.now(UTC), None
        self.thread = threading.Thread(target=self._run, args=(runtime, dry_run), name="ui-retrain", daemon=True)
        self.thread.start()

    def _run(self, runtime: Runtime, dry_run: bool) -> None:
        from finetune.retrain import RetrainBusy, retrain

        try:
            with redirect_stderr(io.StringIO()):  # the recipes' progress bars; the runs table shows progress
                outcomes = retrain(runtime, dry_run=dry_run, echo=self.lines.append)
            self.lines.append(f"done: {len(outcomes)} task(s)" + (" (dry run)" if dry_run else ""))
        except RetrainBusy as exc:
            self.lines.append(f"not started: {exc}")
        except Exception as exc:  # noqa: BLE001 - shown to the admin, logged by retrain itself
            self.lines.append(f"failed: {type(exc).__name__}: {exc}")
        finally:
            self.finished = datetime.now(UTC)

    def status(self) -> str:
        if self.started is None:
            return "No retrain started from this server yet."
        state = "running…" if self.running else f"finished {when(self.finished)}"
        log = "\n".join(self.lines[-30:]) or "(starting)"
        return f"Retrain started {when(self.started)} UTC, {state}\n\n```\n{log}\n```"


_JOBS: dict[int, RetrainJob] = {}


def job_for(runtime: Runtime) -> RetrainJob:
    return _JOBS.setdefault(id(runtime), RetrainJob())


# ---- model versions -----------------------------------------------------------------------
def version_choices(runtime: Runtime) -> list[tuple[str, str]]:
    with runtime.sessions() as session:
        return [(f"{v.task}/{v.route} · {v.name} · {v.status}", v.id)
                for task in TASKS for v in list_model_versions(session, task=task)]


def route_choices(runtime: Runtime) -> list[str]:
    return [f"{task}/{route}" for task in TASKS for route in versions.configured_routes(runtime.settings, task)]


# ---- knowledge base -----------------------------------------------------------------------
def kb_table(runtime: Runtime) -> tuple[list[list], list[str]]:
    with runtime.sessions() as session:
        articles = kb_articles.list_kb_articles(session)
        return ([[a.id, a.title, a.language, ", ".join(a.tags or []), when(a.updated_at)] for a in articles],
                [a.id for a in articles])


def build_admin_tab(runtime: Runtime, access: Access) -> list[tuple]:
    """The tab's components and events, inside the caller's gr.Tab. Returns what ui/app.py
    runs when the tab is selected: [(function, inputs, outputs), ...]."""
    events = AdminEvents(runtime, access)
    gr.Markdown("Admins only. Changes here affect what every customer gets.")
    ui = SimpleNamespace(**runs_panel(), **versions_panel(), **retrain_panel(), **knowledge_panel())
    wire_runs(ui, events)
    wire_versions(ui, events)
    wire_retrain(ui, events)
    wire_knowledge(ui, events)
    return [(events.refresh_kb, [], [ui.kb_rows, ui.pick]), (events.refresh_runs, [ui.run], run_outputs(ui)),
            (events.refresh_versions, [], [ui.version_rows, ui.version, ui.route])]


class AdminEvents:
    """What the tab's events do; each one checks that the caller is an admin now."""

    def __init__(self, runtime: Runtime, access: Access):
        self.runtime, self.access = runtime, access

    def admin(self, request: gr.Request | None) -> str:
        return require(self.access, request, "admin")

    # -- fine-tune runs and the retrain job -----------------------------------------------

    def refresh_runs(self, selected: str | None, request: gr.Request):
        self.admin(request)
        rows, choices = runs_table(self.runtime)
        ids = [c[1] for c in choices]
        selected = selected if selected in ids else (ids[0] if ids else None)
        text, curve = run_details(self.runtime, selected)
        return rows, gr.update(choices=choices, value=selected), text, curve, job_for(self.runtime).status()

    def tick(self, selected: str | None, request: gr.Request):
        if self.access.role(getattr(request, "username", None)) != "admin":
            return (gr.skip(),) * 5  # one for each of refresh_runs' outputs
        return self.refresh_runs(selected, request)

    def show_run(self, run_id: str | None, request: gr.Request):
        self.admin(request)
        return run_details(self.runtime, run_id)

    def start_retrain(self, dry_run: bool, request: gr.Request):
        self.admin(request)
        job = job_for(self.runtime)
        job.start(self.runtime, dry_run=dry_run)
        time.sleep(0.5)  # the first log line, usually
        return job.status()

    # -- model versions -------------------------------------------------------------------

    def refresh_versions(self, request: gr.Request):
        self.admin(request)
        return versions_table(self.runtime), gr.update(choices=version_choices(self.runtime)), gr.update(
            choices=route_choices(self.runtime))

    def activate(self, version_id: str | None, request: gr.Request):
        self.admin(request)
        if not version_id:
            raise gr.Error("Pick a version.")
        with user_errors(), self.runtime.sessions.begin() as session:
            v = versions.activate(session, self.runtime.settings, version_id)
            message = f"Activated **{esc(v.task)}/{esc(v.route)} {esc(v.name)}**; the server swaps it in within seconds."
        return message, versions_table(self.runtime), gr.update(choices=version_choices(self.runtime))

    def rollback(self, route: str | None, request: gr.Request):
        self.admin(request)
        if not route:
            raise gr.Error("Pick a task/route.")
        task, _, route_name = route.partition("/")
        with user_errors(), self.runtime.sessions.begin() as session:
            v = versions.rollback(session, self.runtime.settings, task, route_name or "default")
            message = f"Rolled **{esc(task)}/{esc(route_name)}** back to **{esc(v.name)}**."
        return message, versions_table(self.runtime), gr.update(choices=version_choices(self.runtime))

    # -- knowledge base -------------------------------------------------------------------

    def refresh_kb(self, request: gr.Request):
        self.admin(request)
        rows, ids = kb_table(self.runtime)
        return rows, gr.update(choices=ids)

    def load_article(self, article_id: str | None, request: gr.Request):
        self.admin(request)
        if not article_id:
            return "", "", "en", "", ""
        with self.runtime.sessions() as session:
            a = kb_articles.get_kb_article(session, article_id=article_id)
            if a is None:
                raise gr.Error(f"No article {article_id!r}.")
            return a.id, a.title, a.language, ", ".join(a.tags or []), a.body

    def save_article(self, article_id: str, title: str, language: str, tags: str, body: str, request: gr.Request):
        self.admin(request)
        with user_errors():
            article = _article({"id": (article_id or "").strip(), "title": (title or "").strip(), "body": body,
                                "language": (language or "").strip() or None,
                                "tags": [t.strip() for t in (tags or "").split(",") if t.strip()]}, "the form")
            with self.runtime.sessions.begin() as session:
                import_articles(session, [article], self.runtime.embedder)
        rows, ids = kb_table(self.runtime)
        return f"Saved article `{esc(article.id)}`.", rows, gr.update(choices=ids, value=article.id)

    def import_file(self, file, request: gr.Request):
        self.admin(request)
        if not file:
            raise gr.Error("Upload a .jsonl or .md file.")
        file = uploaded_file(file, (".jsonl", ".md"))  # never a path the client names
        with user_errors():
            articles: list[Article] = read_articles(file)
            with self.runtime.sessions.begin() as session:
                n = import_articles(session, articles, self.runtime.embedder)
        rows, ids = kb_table(self.runtime)
        return f"Imported {n} article(s) from `{esc(Path(file).name)}`.", rows, gr.update(choices=ids)


# ---- the components, top to bottom --------------------------------------------------------
def runs_panel() -> dict:
    """Fine-tune runs: pick one, the table, its details and loss curve."""
    with gr.Accordion("Fine-tune runs", open=True):
        with gr.Row():
            run = gr.Dropdown(label="Run", choices=[], scale=4, elem_id="admin-run")
            refresh = gr.Button("Refresh", scale=0, min_width=90, elem_id="admin-refresh")
        runs = gr.Dataframe(headers=RUN_COLUMNS, datatype=["str"] * len(RUN_COLUMNS), interactive=False, wrap=True,
                            label="Runs (newest first)", elem_id="admin-runs")
        details = gr.Markdown(elem_id="admin-run-details")
        curve = gr.LinePlot(x="step", y="value", color="series", title="Loss", elem_id="plot-loss", height=260)
    return dict(run=run, refresh=refresh, runs=runs, details=details, curve=curve)


def versions_panel() -> dict:
    """Model versions: the table, Activate a version, Roll back a task/route."""
    with gr.Accordion("Model versions", open=True):
        version_rows = gr.Dataframe(headers=VERSION_COLUMNS,
                                    datatype=["str"] * len(VERSION_COLUMNS), interactive=False, wrap=True,
                                    label="Versions", elem_id="admin-versions")
        with gr.Row():
            version = gr.Dropdown(label="Version", choices=[], scale=3, elem_id="admin-version")
            activate_button = gr.Button("Activate", scale=0, min_width=100, elem_id="admin-activate")
            route = gr.Dropdown(label="Task/route", choices=[], scale=2, elem_id="admin-route")
            rollback_button = gr.Button("Roll back", scale=0, min_width=100, elem_id="admin-rollback")
        version_status = gr.Markdown(elem_id="admin-version-status")
    return dict(version_rows=version_rows, version=version, activate_button=activate_button, route=route,
                rollback_button=rollback_button, version_status=version_status)


def retrain_panel() -> dict:
    """Start a retrain (or a dry run) and follow its log."""
    with gr.Accordion("Retrain", open=True):
        gr.Markdown("Runs `supportbot retrain` here, in the background: new feedback is exported, mixed with the "
                    "original data, fine-tuned and promoted only when it is measurably better.")
        with gr.Row():
            dry_run = gr.Checkbox(label="Dry run (say what would be trained)", value=False, elem_id="admin-dry-run")
            retrain_button = gr.Button("Start retrain", variant="primary", elem_id="admin-retrain")
        retrain_status = gr.Markdown(elem_id="admin-retrain-status")
    return dict(dry_run=dry_run, retrain_button=retrain_button, retrain_status=retrain_status)


def knowledge_panel() -> dict:
    """Knowledge base: the articles, the editor, importing a file."""
    with gr.Accordion("Knowledge base", open=True):
        kb_rows = gr.Dataframe(headers=KB_COLUMNS, datatype=["str"] * len(KB_COLUMNS), interactive=False, wrap=True,
                               label="Articles", elem_id="admin-kb", max_height=300)
        with gr.Row():
            pick = gr.Dropdown(label="Edit article", choices=[], scale=3, elem_id="admin-kb-pick")
            kb_refresh = gr.Button("Refresh", scale=0, min_width=90)
        with gr.Row():
            article_id = gr.Textbox(label="id", elem_id="admin-kb-id")
            title = gr.Textbox(label="title", scale=2, elem_id="admin-kb-title")
            language = gr.Dropdown(["en", "zh"], value="en", label="language", allow_custom_value=True)
            tags = gr.Textbox(label="intent tags (comma separated)", elem_id="admin-kb-tags")
        body = gr.Textbox(label="body", lines=5, elem_id="admin-kb-body")
        with gr.Row():
            save = gr.Button("Save article", variant="primary", elem_id="admin-kb-save")
            upload = gr.File(label="Import .jsonl / .md", file_types=[".jsonl", ".md"], elem_id="admin-kb-upload")
            import_button = gr.Button("Import file", elem_id="admin-kb-import")
        kb_status = gr.Markdown(elem_id="admin-kb-status")
    return dict(kb_rows=kb_rows, pick=pick, kb_refresh=kb_refresh, article_id=article_id, title=title,
                language=language, tags=tags, body=body, save=save, upload=upload, import_button=import_button,
                kb_status=kb_status)


# ---- the events ---------------------------------------------------------------------------
def run_outputs(ui: SimpleNamespace) -> list:
    return [ui.runs, ui.run, ui.details, ui.curve, ui.retrain_status]


def wire_runs(ui: SimpleNamespace, events: AdminEvents) -> None:
    """Refresh (also every POLL_S seconds while an admin looks), pick a run."""
    ui.refresh.click(events.refresh_runs, inputs=ui.run, outputs=run_outputs(ui), api_name="admin_runs")
    ui.run.input(events.show_run, inputs=ui.run, outputs=[ui.details, ui.curve], api_visibility="private")
    gr.Timer(POLL_S).tick(events.tick, inputs=ui.run, outputs=run_outputs(ui), api_visibility="private",
                          show_progress="hidden", concurrency_limit=None)


def wire_versions(ui: SimpleNamespace, events: AdminEvents) -> None:
    """Activate a version, roll a task/route back."""
    version_outputs = [ui.version_status, ui.version_rows, ui.version]
    ui.activate_button.click(events.activate, inputs=ui.version, outputs=version_outputs, api_name="admin_activate")
    ui.rollback_button.click(events.rollback, inputs=ui.route, outputs=version_outputs, api_name="admin_rollback")


def wire_retrain(ui: SimpleNamespace, events: AdminEvents) -> None:
    """Start a retrain; its log shows with the runs."""
    ui.retrain_button.click(events.start_retrain, inputs=ui.dry_run, outputs=ui.retrain_status,
                            api_name="admin_retrain")


def wire_knowledge(ui: SimpleNamespace, events: AdminEvents) -> None:
    """List, open, save and import articles."""
    article_fields = [ui.article_id, ui.title, ui.language, ui.tags, ui.body]
    kb_outputs = [ui.kb_status, ui.kb_rows, ui.pick]
    ui.kb_refresh.click(events.refresh_kb, outputs=[ui.kb_rows, ui.pick], api_name="admin_kb_list")
    ui.pick.input(events.load_article, inputs=ui.pick, outputs=article_fields, api_name="admin_kb_get")
    ui.save.click(events.save_article, inputs=article_fields, outputs=kb_outputs, api_name="admin_kb_save")
    ui.import_button.click(events.import_file, inputs=ui.upload, outputs=kb_outputs, api_name="admin_kb_import")
