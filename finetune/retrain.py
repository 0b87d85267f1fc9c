"""The periodic job (`supportbot retrain`): feedback in, a measurably better model out.

For each task (sentiment per route, intent, chat):

    export what is new since the last finished run ── too little? skip
        → split it: train / held-out slice (judges the candidate)
        → fine-tune from the active version on the new data mixed with the task's
          original training data (so the model does not forget)
        → evaluate candidate and active version on the fixed benchmark sets and the
          held-out slice
        → promote only if the candidate is not worse on any benchmark (within the
          tolerance) and better on the held-out slice; else reject it. Chat is judged
          on answer quality instead (finetune/answer_quality.py: fact recall on a
          grounded evaluation file, no more invented values), perplexity reported only

One run at a time across every host on the database: a lease in the database (storage
.repositories.leases) renewed by a heartbeat while the run works; a run killed with -9
stops renewing, and its lease can be taken over once it expires. Every run and decision is
a `retrain_runs` row. A killed run never touches the active version (activation is the
last step, one transaction); the next run marks it `killed`, and starts clean without
consuming its data (the data watermark moves only when a run finishes).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

import sqlalchemy as sa

from core.config import Settings
from core.errors import InputError, SupportbotError
from bot.prometheus import RETRAIN_RUNS
from bot.sentiment import ROUTE_LANGUAGES  # which languages each model route serves
from storage import export as exports
from storage.erasure import host_id
from storage.models import DEFAULT_ROUTE, TASKS, Export, RetrainRun, utcnow

log = logging.getLogger(__name__)

FINISHED = ("promoted", "rejected")
SEED = 1234
LEASE = "retrain"
LEASE_TTL_S = 300.0  # a killed run's lock frees after this long
HEARTBEAT_S = 60.0  # how often a running retrain renews its lease (several times per TTL)


class RetrainBusy(SupportbotError):
    """Another retrain holds the lock."""


@dataclass
class Outcome:
    task: str
    route: str
    status: str  # promoted | rejected | skipped | failed
    reason: str
    run_id: str | None = None
    details: dict = field(default_factory=dict)

    def line(self) -> str:
        where = self.task if self.route == DEFAULT_ROUTE else f"{self.task}/{self.route}"
        return f"{where}: {self.status} — {self.reason}"


def _died_on_this_host(holder: str) -> bool:
    """Whether a lease holder (host:pid:random) was a process of this host that is gone."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, owned by someone else
        return False
    return False


@contextlib.contextmanager
def retrain_lock(engine, *, ttl_s: float = LEASE_TTL_S, heartbeat_s: float = HEARTBEAT_S) -> Iterator[str]:
    """Hold the database's retrain lease (one run across all hosts) while the block runs;
    RetrainBusy when another live run holds it. Yields the holder id (host:pid:random)."""
    from storage.repositories import leases

    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    held = leases.acquire(engine, name=LEASE, holder=holder, ttl_s=ttl_s)
    if held is not None and _died_on_this_host(held.holder):  # a run killed here: no need to wait for expiry
        log.warning("the retrain lease of %s is taken over: that process no longer runs", held.holder)
        leases.release(engine, name=LEASE, holder=held.holder)
        held = leases.acquire(engine, name=LEASE, holder=holder, ttl_s=ttl_s)
    if held is not None:
        raise RetrainBusy(f"another retrain is running ({held.holder}, its lease runs until "
                          f"{held.expires_at:%Y-%m-%d %H:%M:%S} UTC unless renewed); try again when it ends")
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(heartbeat_s):
            try:
                if not leases.renew(engine, name=LEASE, holder=holder, ttl_s=ttl_s):
                    log.error("the retrain lease expired and was taken over: another run may be training now")
                    return
            except Exception as exc:  # noqa: BLE001 - the database briefly down: try again next beat
                log.warning("could not renew the retrain lease: %s", exc)

    thread = threading.Thread(target=heartbeat, name="retrain-lease", daemon=True)
    thread.start()
    try:
        yield holder
    finally:
        stop.set()
        thread.join()
        try:
            leases.release(engine, name=LEASE, holder=holder)
        except Exception as exc:  # noqa: BLE001 - it expires by itself
            log.warning("could not release the retrain lease (it expires in %g s): %s", ttl_s, exc)


def plan(settings: Settings, tasks: list[str] | None) -> list[tuple[str, str]]:
    """(task, route) pairs to consider, in order: every configured one (chat only while
    generation is local: a remote server's model is not ours to train)."""
    from bot import versions

    pairs = [(task, route) for task in TASKS for route in versions.configured_routes(settings, task)
             if versions.configured_ref(settings, task, route) and not (task == "chat" and settings.chat_backend != "local")]
    return [p for p in pairs if not tasks or p[0] in tasks or f"{p[0]}/{p[1]}" in tasks]


def _files(setting: str | None) -> list[str]:
    return [x.strip() for x in (setting or "").split(",") if x.strip()]


def _task_files(settings: Settings, task: str, route: str, kind: str) -> list[str]:
    """Original training data ("data") or benchmark files ("benchmark") of a task and
    route (settings retrain_sentiment_data, retrain_sentiment_zh_benchmark, ...)."""
    name = f"retrain_{task}{'' if route == DEFAULT_ROUTE else '_' + route}_{kind}"
    return _files(getattr(settings, name, None))


def recover_killed(session) -> int:
    """Runs left 'running' by a killed process (we hold the lock, so none is alive)."""
    stale = list(session.scalars(sa.select(RetrainRun).where(RetrainRun.status == "running")))
    for run in stale:
        run.status, run.finished_at = "killed", utcnow()
        run.reason = "the process ended before the run finished; the active version was not changed"
    return len(stale)


def watermark(session, task: str, route: str) -> datetime | None:
    """The newest source time a finished run has used."""
    return session.scalar(
        sa.select(sa.func.max(Export.until)).join(RetrainRun, RetrainRun.id == Export.retrain_run_id)
        .where(Export.what == task, Export.route == route, RetrainRun.status.in_(FINISHED)))


def split_rows(rows: list, fraction: float) -> tuple[list, list]:
    """(train, held-out): a seeded shuffle, at least one row on each side."""
    rows = list(rows)
    random.Random(SEED).shuffle(rows)
    n_hold = min(len(rows) - 1, max(1, round(len(rows) * fraction)))
    return rows[n_hold:], rows[:n_hold]


def split_stable(rows: list, fraction: float) -> tuple[list, list]:
    """(train, held-out), as many held out as split_rows holds, chosen by a hash of each
    row's text or conversation rather than a shuffle: the same rows give the same split in
    whatever order they come, and as accumulated rows grow the judge's slice keeps most of
    its rows (those whose hash ranks lowest) instead of being drawn anew each run."""
    def rank(row) -> bytes:
        return hashlib.sha256(f"split:{row.key}".encode()).digest()

    ordered = sorted(rows, key=rank)
    n_hold = min(len(rows) - 1, max(1, round(len(rows) * fraction)))
    held = {id(r) for r in ordered[:n_hold]}
    return [r for r in rows if id(r) not in held], [r for r in rows if id(r) in held]


# ---- measuring --------------------------------------------------------------------------

def score_classifier(ref: str, task: str, data: str | Path, settings: Settings, *, restrict: bool = True) -> float:
    """Accuracy (percent) of a classifier version on a labelled file. `restrict`: a
    sentiment benchmark without neutral rows (SST-2) is scored on its own labels only;
    never for a feedback slice, whose few labels say nothing about the label set."""
    from bot.classifier import TextClassifier
    from finetune.data import read_examples
    from finetune.evaluate import evaluate

    from core.hardware import resolve_inference_dtype

    clf = TextClassifier.load(ref, settings.model_cache_dir, batch_size=settings.inference_batch_size,
                              dtype=resolve_inference_dtype(settings.inference_dtype))
    report = evaluate(clf.predict_proba, clf.labels, read_examples(data), restrict=restrict and task == "sentiment",
                      progress=False)
    return round(100 * report["accuracy"], 2)


def score_chat(ref: str, data: str | Path, settings: Settings) -> float:
    """Perplexity on the assistant turns (lower is better); reported, the chat gate is
    answer quality (score_chat_answers)."""
    from finetune.perplexity import evaluate_chat

    return round(evaluate_chat(ref, data, settings.model_cache_dir, max_samples=200)["perplexity"], 4)


def score_chat_answers(ref: str, data: str | Path, settings: Settings) -> dict:
    """Answer quality on a grounded evaluation file (finetune/answer_quality.py): fact
    recall and the share of replies with an invented value, both percent."""
    from finetune.answer_quality import evaluate_answers

    result = evaluate_answers(ref, data, settings.model_cache_dir)
    return {"fact_recall": result["fact_recall"], "invented": result["invented"], "n": result["n"],
            "languages": {k: {"fact_recall": v["fact_recall"], "invented": v["invented"]}
                          for k, v in result["languages"].items()}}


def cannot_judge(settings: Settings, task: str) -> str | None:
    """Why a task's candidate could not be judged (so it is not trained), else None: chat
    needs its grounded evaluation file, since perplexity does not say whether the replies
    carry the facts (issue 18)."""
    if task != "chat":
        return None
    path = settings.retrain_chat_eval
    if path is None:
        return ("cannot judge answer quality: no grounded evaluation file (set SUPPORTBOT_RETRAIN_CHAT_EVAL; "
                "scripts/prepare_grounded_eval.py writes one); a chat model is not promoted on perplexity alone")
    if not Path(path).is_file():
        return f"cannot judge answer quality: {path}: no such file (SUPPORTBOT_RETRAIN_CHAT_EVAL)"
    return None


def decide_chat(active: dict, candidate: dict, tolerance: float, baseline: dict | None = None) -> tuple[bool, str]:
    """The chat gate, on answer quality (`"answers"`: fact_recall, invented): promote iff
    fact recall is higher than the active version's and not below the route's original
    model's by more than `tolerance` points, and the share of replies with an invented
    value rises by no more than `tolerance` points above either. Perplexity (benchmarks,
    feedback slice) is reported, not judged."""
    if "answers" not in active or "answers" not in candidate:
        return False, "cannot judge answer quality: no grounded evaluation (SUPPORTBOT_RETRAIN_CHAT_EVAL)"
    before, after = active["answers"], candidate["answers"]
    original = (baseline or {}).get("answers")
    for who, ref in (("the active version", before), ("the original model", original)):
        if ref is not None and after["invented"] > ref["invented"] + tolerance:
            return False, (f"more replies with an invented value than {who}: {ref['invented']}% → "
                           f"{after['invented']}% (tolerance {tolerance})")
    if original is not None and after["fact_recall"] < original["fact_recall"] - tolerance:
        return False, (f"lower fact recall than the original model: {original['fact_recall']}% → "
                       f"{after['fact_recall']}% (tolerance {tolerance})")
    if not after["fact_recall"] > before["fact_recall"]:
        return False, f"fact recall not higher: {before['fact_recall']}% → {after['fact_recall']}%"
    return True, (f"fact recall {before['fact_recall']}% → {after['fact_recall']}%, invented "
                  f"{before['invented']}% → {after['invented']}% (perplexity, not judged: feedback slice "
                  f"{active.get('feedback')} → {candidate.get('feedback')})")


def decide(task: str, active: dict, candidate: dict, tolerance: float,
           baseline: dict | None = None) -> tuple[bool, str]:
    """Promote iff not worse on any benchmark (within `tolerance` accuracy points) than the
    active version nor than the route's original model (`baseline`, when it is not the
    active one: small losses cannot add up over rounds), and better on the held-out
    feedback slice. Chat: `decide_chat` (answer quality)."""
    if task == "chat":
        return decide_chat(active, candidate, tolerance, baseline)

    def worse(before, after):
        return after < before - tolerance

    for name, before in active["benchmarks"].items():
        after = candidate["benchmarks"][name]
        if worse(before, after):
            return False, f"worse on benchmark {name}: {before} → {after} (tolerance {tolerance})"
        original = (baseline or {}).get("benchmarks", {}).get(name)
        if original is not None and worse(original, after):
            return False, (f"worse on benchmark {name} than the original model: {original} → {after} "
                           f"(tolerance {tolerance})")
    before, after = active["feedback"], candidate["feedback"]
    if not after > before:
        return False, f"not better on the held-out feedback slice: {before} → {after}"
    bench = ", ".join(f"{n} {active['benchmarks'][n]} → {candidate['benchmarks'][n]}" for n in active["benchmarks"])
    return True, f"feedback slice {before} → {after}" + (f"; benchmarks {bench}" if bench else "")


# ---- one task ---------------------------------------------------------------------------

def _rows(session, settings: Settings, task: str, route: str):
    """(watermark, rows new since the last finished run, rows to train and judge on).
    With retrain_accumulate (the default) the latter is every confirmed row so far, so a
    correction keeps counting in later runs; else the new rows only."""
    since = watermark(session, task, route)
    rows = exports.collect_rows(session, what=task, since=None if settings.retrain_accumulate else since,
                                route=route, route_languages=ROUTE_LANGUAGES,
                                confirmed_min_score=settings.retrain_confirmed_min_score)
    if task == "chat":
        rows = [r for r in rows if passes_output_guard(r.data)]
    new = [r for r in rows if since is None or r.at > since]
    return since, new, rows


def passes_output_guard(row: dict) -> bool:
    """A chat row may teach the model only if its trained replies would pass the output
    guard the live bot applies (no instructions, keys, or requests for card numbers,
    codes or passwords), even when an agent confirmed it."""
    from bot.injection import leak_reason

    replies = [m for m in row.get("messages", []) if m.get("role") == "assistant" and m.get("weight", 1) != 0]
    bad = [m for m in replies if leak_reason(m.get("content") or "")]
    if bad:
        log.warning("retrain: a chat row fails the output guard and is left out (%s)",
                    leak_reason(bad[0].get("content") or ""))
    return not bad


def _original_mix(files: list[str], n_new: int, task: str) -> list[str]:
    """The original data, subsampled so it is about 3× the new rows (at least 200): new
    knowledge gets weight, old knowledge stays."""
    if not files:
        return []
    if task == "chat":
        from finetune.chat_data import read_conversations as read
    else:
        from finetune.data import read_examples as read
    out = []
    want = max(200, 3 * n_new) / len(files)
    for f in files:
        path, _, weight = f.partition("@")
        n = len(read(path))
        w = float(weight) if weight else min(1.0, want / max(1, n))
        out.append(f"{path}@{w:.6g}")
    return out


def _train(settings: Settings, task: str, active_ref: str, train_files: list[str], out: Path, version: str) -> None:
    """Fine-tune a candidate from the active version: the recipe called with its typed
    arguments (the flags `supportbot finetune chat|classifier` would parse), validated first."""
    from core.adapter_artifact import read_meta
    from core.model_refs import resolve

    resolved = resolve(active_ref, settings.model_cache_dir)
    flags = {"train": list(train_files), "output": str(out), "version": version, "seed": SEED,
             "database_url": settings.resolved_database_url, "epochs": float(settings.retrain_epochs),
             "max_steps": settings.retrain_max_steps or 0, "threads": settings.threads or 0,
             # an adapter is continued on its own base; a plain model is the base itself
             "base": read_meta(resolved.path)["base"] if resolved.adapter else active_ref,
             "init_from": resolved.path if resolved.adapter else None}
    if settings.retrain_learning_rate:
        flags["learning_rate"] = float(settings.retrain_learning_rate)
    if task == "chat":
        from finetune import chat_recipe as recipe

        args = recipe.ChatArgs(**flags)
    else:
        from finetune import classifier_recipe as recipe

        args = recipe.ClassifierArgs(task=task, **flags)
    args.validate()
    recipe.run(args)


def _baseline_ref(settings: Settings, task: str, route: str) -> str | None:
    """The route's original model (what it serves when no version is active)."""
    from bot.versions import configured_ref

    return configured_ref(settings, task, route)


def _alphas(settings: Settings) -> list[float]:
    """The interpolation alphas to try, 1 (the candidate as trained) always among them."""
    alphas = {float(a) for a in settings.retrain_interpolation.split(",") if a.strip()} | {1.0}
    return sorted(alphas, reverse=True)


def _candidates(settings: Settings, active_ref: str, candidate_dir: Path) -> list[tuple[float, Path]]:
    """(alpha, adapter directory) for each alpha: the trained candidate, and its averages
    with the active adapter where both have the same tensors (else the candidate alone)."""
    from core.model_refs import resolve
    from finetune.interpolation import can_interpolate, interpolate

    found = [(1.0, candidate_dir)]
    alphas = [a for a in _alphas(settings) if a < 1.0]
    if not alphas:
        return found
    try:
        active_dir = resolve(active_ref, settings.model_cache_dir).path
        usable = can_interpolate(active_dir, candidate_dir)
    except Exception as exc:  # a candidate that cannot be read is judged (and refused) as it is
        log.warning("retrain: no interpolation (%s)", exc)
        usable = False
    if usable:
        found += [(a, interpolate(active_dir, candidate_dir, a, candidate_dir.parent / f"candidate-alpha{a:g}"))
                  for a in alphas]
    return found


def _judge(settings: Settings, task: str, active_ref: str, candidate_dir: Path, benchmarks: list[str],
           held_path: str, baseline_ref: str | None = None) -> tuple[bool, str, Path, dict]:
    """Score the active version and each candidate (alpha) on the benchmarks and the held-out
    feedback slice, and the route's original model (`baseline_ref`) on the benchmarks when
    another version is active; the chosen candidate is the best on the slice among those
    the gate passes (else the plain candidate, rejected). Chat: each is also scored on
    answer quality (`"answers"`), which alone decides and chooses. Returns (promote,
    reason, chosen dir, measurements)."""
    def score(ref, data, restrict=True):
        if task == "chat":
            return score_chat(ref, data, settings)
        return score_classifier(ref, task, data, settings, restrict=restrict)

    def answers(ref):  # chat: the gate's measure (perplexity below is reported only)
        return {"answers": score_chat_answers(ref, settings.retrain_chat_eval, settings)} if task == "chat" else {}

    def measure(ref):
        return {"benchmarks": {Path(b).name: score(ref, b) for b in benchmarks},
                "feedback": score(ref, held_path, restrict=False), **answers(ref)}

    measured = {"active": measure(active_ref)}
    if baseline_ref and baseline_ref != active_ref and (benchmarks or task == "chat"):
        measured["baseline"] = {"model": baseline_ref,
                                "benchmarks": {Path(b).name: score(baseline_ref, b) for b in benchmarks},
                                **answers(baseline_ref)}
    verdicts = []
    for alpha, directory in _candidates(settings, active_ref, candidate_dir):
        scores = measure(str(directory))
        measured[f"alpha={alpha:g}"] = scores
        promote, reason = decide(task, measured["active"], scores, settings.retrain_tolerance,
                                 baseline=measured.get("baseline"))
        verdicts.append((promote, alpha, directory, reason, scores))
    passing = [v for v in verdicts if v[0]]

    def rank(v):  # best first: chat by fact recall then fewer invented, others by the slice; then higher alpha
        if task == "chat":
            return (-v[4]["answers"]["fact_recall"], v[4]["answers"]["invented"], -v[1])
        return (-v[4]["feedback"], -v[1])

    if passing:
        promote, alpha, directory, reason, scores = min(passing, key=rank)
    else:
        promote, alpha, directory, reason, scores = verdicts[0]
    measured["candidate"] = scores
    measured["alpha"] = alpha
    if len(verdicts) > 1:
        reason += f" (alpha {alpha:g} of {', '.join(f'{v[1]:g}' for v in verdicts)})"
    return promote, reason, directory, measured


def retrain_task(settings: Settings, sessions, task: str, route: str, *, dry_run: bool = False,
                 served_ref: Callable[[str, str], str]) -> Outcome:
    from storage.repositories import model_versions as mv

    with sessions.begin() as session:
        since, new, rows = _rows(session, settings, task, route)
    n_new = len(new)
    reason = (f"{n_new} new rows since the last run; {settings.retrain_min_new} needed"
              if n_new < settings.retrain_min_new else cannot_judge(settings, task))
    if reason:
        if not dry_run:
            with sessions.begin() as session:
                run = RetrainRun(task=task, route=route, status="skipped", reason=reason, finished_at=utcnow(),
                                 details={"new_rows": n_new})
                session.add(run)
                session.flush()
                run_id = run.id
        return Outcome(task, route, "skipped", reason, None if dry_run else run_id, {"new_rows": n_new})
    if dry_run:
        return Outcome(task, route, "would train", f"{n_new} new rows since {since or 'the start'}",
                       details={"new_rows": n_new, "rows": len(rows)})

    started = time.monotonic()
    active_ref = served_ref(task, route)
    with sessions.begin() as session:
        active_row = mv.get_active_model_version(session, task=task, route=route)
        run = RetrainRun(task=task, route=route, status="running", active_version_id=active_row.id if active_row else None,
                         details={"new_rows": n_new, "active": active_ref})
        session.add(run)
        session.flush()
        run_id = run.id
    work = settings.retrain_path / run_id
    details: dict = {"new_rows": n_new, "rows": len(rows), "active": active_ref}
    try:
        train_rows, held_rows = split_stable(rows, settings.retrain_holdout_fraction)
        suffix = "jsonl" if task == "chat" else "csv"
        with sessions.begin() as session:
            train_path, held_path = (
                exports.write_export(session, what=task, rows=part, route=route, since=since, retrain_run_id=run_id,
                                     path=work / f"{name}.{suffix}", host=host_id(settings.home)).path
                for name, part in (("new_train", train_rows), ("new_heldout", held_rows)))
        original = _original_mix(_task_files(settings, task, route, "data"), len(train_rows), task)
        benchmarks = _task_files(settings, task, route, "benchmark")
        details.update(train_rows=len(train_rows), heldout_rows=len(held_rows), original_data=original,
                       benchmarks=benchmarks)
        version = f"{task}{'' if route == DEFAULT_ROUTE else '-' + route}-retrain-{utcnow():%Y%m%d-%H%M%S}"
        candidate_dir = work / "candidate"
        t0 = time.monotonic()
        # Feedback rows twice: they are few next to the original data.
        _train(settings, task, active_ref, [f"{train_path}@2", *original], candidate_dir, version)
        details["train_s"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        promote, reason, chosen, details["metrics"] = _judge(settings, task, active_ref, candidate_dir, benchmarks,
                                                              held_path, _baseline_ref(settings, task, route))
        details["eval_s"] = round(time.monotonic() - t0, 1)
        with sessions.begin() as session:
            promote, reason = _record_decision(session, settings, task, route, run_id, version, chosen, promote,
                                               reason, details, started)
        if not promote:
            shutil.rmtree(candidate_dir / "checkpoint", ignore_errors=True)
        return Outcome(task, route, "promoted" if promote else "rejected", reason, run_id, details)
    except Exception as exc:  # recorded, then the next task goes on
        log.exception("retrain of %s/%s failed", task, route)
        with sessions.begin() as session:
            run = session.get(RetrainRun, run_id)
            details["total_s"] = round(time.monotonic() - started, 1)
            run.status, run.reason, run.details, run.finished_at = (
                "failed", f"{type(exc).__name__}: {exc}", details, utcnow())
        return Outcome(task, route, "failed", f"{type(exc).__name__}: {exc}", run_id, details)


def _record_decision(session, settings: Settings, task: str, route: str, run_id: str, version: str, chosen: Path,
                     promote: bool, reason: str, details: dict, started: float) -> tuple[bool, str]:
    """The candidate's version row (pointing at the chosen adapter), activated when promoted
    (the same path as `supportbot models activate` and the API: refused if not servable),
    and the run's decision."""
    from bot import versions
    from storage.repositories import model_versions as mv

    candidate = mv.get_model_version_by_name(session, task=task, name=version)
    stored = versions.path_to_store(settings, str(chosen.resolve()))
    if candidate is None:  # the recipe could not record it (e.g. database briefly down)
        candidate = mv.create_model_version(session, task=task, name=version, path=stored)
    candidate.path = stored
    candidate.route = route
    candidate.metrics = {**(candidate.metrics or {}), "retrain": details["metrics"]["candidate"]}
    run = session.get(RetrainRun, run_id)
    run.candidate_version_id = candidate.id
    if promote:
        try:
            versions.activate(session, settings, candidate.id, task)
        except InputError as exc:  # check_loadable refused it before anything was written
            promote, reason = False, f"the candidate cannot be served: {exc}"
    if not promote:
        candidate.status = "rejected"
    details["total_s"] = round(time.monotonic() - started, 1)
    run.status, run.reason, run.details, run.finished_at = (
        "promoted" if promote else "rejected", reason, details, utcnow())
    return promote, reason


def _where(task: str, route: str) -> str:
    return task if route == DEFAULT_ROUTE else f"{task}/{route}"


@contextlib.contextmanager
def _count_busy(pairs: list[tuple[str, str]]) -> Iterator[None]:
    """Outcome "busy" (bot.prometheus) for each planned task when another run holds the lock."""
    try:
        yield
    except RetrainBusy:
        for task, route in pairs:
            RETRAIN_RUNS.labels(_where(task, route), "busy").inc()
        raise


def retrain(runtime, *, tasks: list[str] | None = None, dry_run: bool = False,
            echo: Callable[[str], None] = print) -> list[Outcome]:
    """The whole job. Raises RetrainBusy if another run holds the lock."""
    settings = runtime.settings
    pairs = plan(settings, tasks)
    if tasks and not pairs:
        raise SupportbotError(f"no retrainable task in {tasks}; tasks: sentiment, sentiment/zh, intent, chat")
    outcomes = []
    with _count_busy(pairs), retrain_lock(runtime.engine):
        if not dry_run:
            with runtime.sessions.begin() as session:
                n = recover_killed(session)
            if n:
                echo(f"{n} earlier run(s) had been killed; marked as such (the active versions were not changed)")
        refs = runtime.served_refs()
        for task, route in pairs:
            echo(f"{task}{'' if route == DEFAULT_ROUTE else '/' + route}: exporting new feedback…")
            outcome = retrain_task(settings, runtime.sessions, task, route, dry_run=dry_run,
                                   served_ref=lambda t, r: refs[(t, r)])
            echo(outcome.line())
            RETRAIN_RUNS.labels(_where(task, route), outcome.status.replace(" ", "_")).inc()
            outcomes.append(outcome)
    return outcomes
