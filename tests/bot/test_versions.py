"""bot.versions: what each task serves, activation with a baseline, rollback, over a real
SQLite file; adapters are tiny fake directories (tests/fixtures/adapters.py)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from bot import versions
from core.config import settings_with
from core.errors import InputError, NotFoundError
from fixtures.adapters import truncate_weights, write_adapter
from storage.db import make_engine, make_session_factory, upgrade
from storage.repositories import model_versions as repo


@pytest.fixture
def settings(tmp_path):
    return settings_with(home=tmp_path / "home")


@pytest.fixture
def session(settings):
    settings.home.mkdir(parents=True)
    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    with make_session_factory(engine)() as s:
        yield s
    engine.dispose()


def candidate(session, tmp_path, name="sentiment-v9", task="sentiment", route="default", **metrics):
    path = write_adapter(tmp_path / name, task=task)
    return repo.create_model_version(session, task=task, name=name, path=str(path), route=route,
                                     base_model="minilm-l6", metrics=metrics or {"macro_f1": 0.91})


# ---- configured defaults -------------------------------------------------------------------
def test_configured_ref_follows_the_settings(tmp_path):
    s = settings_with(home=tmp_path, sentiment_model="a", sentiment_model_zh="b", intent_model="c", chat_model="d")
    assert [versions.configured_ref(s, "sentiment"), versions.configured_ref(s, "sentiment", "zh"),
            versions.configured_ref(s, "intent"), versions.configured_ref(s, "chat")] == ["a", "b", "c", "d"]
    off = settings_with(home=tmp_path, sentiment_model_zh="none", intent_model="none")
    assert versions.configured_ref(off, "sentiment", "zh") is None and versions.configured_ref(off, "intent") is None
    assert versions.configured_ref(s, "chat", "zh") is None
    with pytest.raises(InputError, match="unknown task 'summary'"):
        versions.configured_ref(s, "summary")


# ---- check_loadable ------------------------------------------------------------------------
def test_check_loadable_accepts_a_complete_adapter_and_plain_references(tmp_path):
    versions.check_loadable("sentiment", str(write_adapter(tmp_path / "ok")))
    versions.check_loadable("chat", str(write_adapter(tmp_path / "chat", task="chat")))
    versions.check_loadable("sentiment", "sentiment-en")  # shipped
    versions.check_loadable("chat", "smollm2-135m")  # packaged
    versions.check_loadable("intent", "some-org/some-intent-model")  # hub id, not fetched


def _missing_weights(d):
    (d / "adapter_model.safetensors").unlink()


def _garbage_meta(d):
    (d / "supportbot.json").write_text("{not json")


def _garbage_weights(d):
    (d / "adapter_model.safetensors").write_bytes(b"\x00" * 64)


@pytest.mark.parametrize("damage, message", [
    (lambda d: truncate_weights(d), r"adapter_model\.safetensors is not a readable safetensors file.*truncated"),
    (lambda d: truncate_weights(d, drop=150), r"not a readable safetensors file"),  # into the header
    (_garbage_weights, r"not a readable safetensors file"),
    (_missing_weights, r"adapter_model\.safetensors is missing"),
    (_garbage_meta, r"supportbot\.json is unreadable"),
    (lambda d: (d / "adapter_config.json").unlink(), r"adapter_config\.json is missing"),
])
def test_check_loadable_refuses_a_damaged_adapter(tmp_path, damage, message):
    adapter = write_adapter(tmp_path / "broken")
    versions.check_loadable("sentiment", str(adapter))  # fine before the damage
    damage(adapter)
    with pytest.raises(InputError, match=message):
        versions.check_loadable("sentiment", str(adapter))


def test_check_loadable_refuses_missing_paths_and_other_tasks(tmp_path):
    with pytest.raises(InputError, match="no such directory"):
        versions.check_loadable("sentiment", str(tmp_path / "gone"))
    with pytest.raises(InputError, match="a model for the intent task, not sentiment"):
        versions.check_loadable("sentiment", str(write_adapter(tmp_path / "intent", task="intent")))
    with pytest.raises(InputError, match="a model for the sentiment task, not chat"):
        versions.check_loadable("chat", "sentiment-en")  # a shipped adapter of another task
    no_task = write_adapter(tmp_path / "old")
    (no_task / "supportbot.json").write_text(json.dumps({"base": "minilm-l6"}))
    with pytest.raises(InputError, match="names no task"):
        versions.check_loadable("sentiment", str(no_task))
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(InputError, match="not a model directory"):
        versions.check_loadable("sentiment", str(plain))
    with pytest.raises(InputError, match="no path"):
        versions.check_loadable("sentiment", None)


# ---- baseline, activate, rollback ------------------------------------------------------------
def test_activate_registers_the_default_and_rollback_returns_to_it(session, settings, tmp_path):
    v9 = candidate(session, tmp_path)
    assert versions.versions_public(session, settings)["sentiment"]["routes"]["default"] == {
        "active": None, "configured_default": "sentiment-en"}

    active = versions.activate(session, settings, "sentiment-v9")
    assert active.id == v9.id and active.status == "active" and active.activated_at is not None
    baseline = repo.get_model_version_by_name(session, task="sentiment", name="sentiment-en")
    assert baseline is not None and baseline.path == "sentiment-en" and baseline.route == "default"
    assert baseline.status == "retired" and baseline.activated_at == baseline.created_at < active.activated_at
    assert repo.get_active_model_version(session, task="sentiment").name == "sentiment-v9"
    assert repo.get_active_model_version(session, task="sentiment", route="zh") is None  # other route untouched

    back = versions.rollback(session, settings, "sentiment")
    assert back.id == baseline.id and back.status == "active"
    assert repo.get_model_version(session, version_id=v9.id).status == "retired"
    listing = versions.versions_public(session, settings)["sentiment"]
    assert listing["routes"]["default"] == {"active": "sentiment-en", "configured_default": "sentiment-en"}
    assert [v["name"] for v in listing["versions"]] == ["sentiment-en", "sentiment-v9"]  # newest first

    # A second activation has history already: no second baseline.
    versions.activate(session, settings, v9.id)
    assert len(repo.list_model_versions(session, task="sentiment")) == 2


def test_a_route_gets_its_own_baseline(session, settings, tmp_path):
    candidate(session, tmp_path, name="sentiment-zh-v3", route="zh")
    versions.activate(session, settings, "sentiment-zh-v3")
    baseline = repo.get_model_version_by_name(session, task="sentiment", name="sentiment-zh-me5")
    assert baseline is not None and baseline.route == "zh"
    routes = versions.versions_public(session, settings)["sentiment"]["routes"]
    assert routes == {"default": {"active": None, "configured_default": "sentiment-en"},
                      "zh": {"active": "sentiment-zh-v3", "configured_default": "sentiment-zh-me5"}}
    assert versions.rollback(session, settings, "sentiment", route="zh").name == "sentiment-zh-me5"
    with pytest.raises(InputError, match="nothing to roll back to: sentiment/default"):
        versions.rollback(session, settings, "sentiment")


def test_ensure_baseline_once_and_only_with_a_default(session, settings, tmp_path):
    candidate(session, tmp_path, name="intent-v2", task="intent")  # a candidate is not history
    first = versions.ensure_baseline(session, settings, "intent", "default")
    assert first is not None and first.name == "intent-bitext" and first.status == "retired"
    repo.activate_model_version(session, version_id=first.id)
    assert versions.ensure_baseline(session, settings, "intent", "default") is None
    assert [v.name for v in repo.list_model_versions(session, task="intent")].count("intent-bitext") == 1
    off = settings_with(home=settings.home, intent_model="none", sentiment_model_zh="none")
    assert versions.ensure_baseline(session, off, "sentiment", "zh") is None
    assert versions.ensure_baseline(session, settings, "chat", "zh") is None  # no such route configured
    assert repo.list_model_versions(session, task="chat") == []


def test_an_unloadable_version_is_refused_before_anything_changes(session, settings, tmp_path):
    broken = candidate(session, tmp_path)
    truncate_weights(tmp_path / "sentiment-v9")
    with pytest.raises(InputError, match="truncated or corrupted"):
        versions.activate(session, settings, broken.id)
    assert [v.name for v in repo.list_model_versions(session)] == ["sentiment-v9"]  # no baseline either
    assert broken.status == "candidate"


def test_rollback_to_a_deleted_directory_is_refused(session, settings, tmp_path):
    import shutil

    candidate(session, tmp_path, name="v1")
    candidate(session, tmp_path, name="v2")
    versions.activate(session, settings, "v1")
    versions.activate(session, settings, "v2")
    shutil.rmtree(tmp_path / "v1")
    with pytest.raises(InputError, match=r"cannot roll back sentiment/default to 'v1': .*no such directory"):
        versions.rollback(session, settings, "sentiment")


def test_names_resolve_per_task_and_ambiguity_asks_for_the_task(session, settings, tmp_path):
    candidate(session, tmp_path / "s", name="v1", task="sentiment")
    intent_v1 = candidate(session, tmp_path / "i", name="v1", task="intent")
    with pytest.raises(InputError, match=r"several tasks \(intent, sentiment\).*--task"):
        versions.activate(session, settings, "v1")
    assert versions.activate(session, settings, "v1", task="intent").id == intent_v1.id
    assert repo.get_active_model_version(session, task="sentiment") is None
    with pytest.raises(NotFoundError, match="no model version 'v7'"):
        versions.activate(session, settings, "v7")
    with pytest.raises(NotFoundError, match="for task chat"):
        versions.activate(session, settings, "v1", task="chat")
    with pytest.raises(InputError, match="belongs to the intent task, not sentiment"):
        versions.activate(session, settings, intent_v1.id, task="sentiment")


def test_version_public_has_the_documented_keys(session, settings, tmp_path):
    v = versions.activate(session, settings, candidate(session, tmp_path).id)
    body = versions.version_public(v)
    assert set(body) == {"id", "task", "route", "name", "status", "path", "base_model", "metrics", "created_at",
                         "activated_at"}
    assert body["status"] == "active" and body["metrics"] == {"macro_f1": 0.91} and body["base_model"] == "minilm-l6"
    assert datetime.fromisoformat(body["activated_at"]) >= datetime.fromisoformat(body["created_at"])
    assert versions.key_metric(body["metrics"]) == ("macro_f1", 0.91)
    assert versions.key_metric({"perplexity": 2.9, "n": 3}) == ("perplexity", 2.9)
    assert versions.key_metric({}) is None


# ---- paths relative to the models directory (issue 19) ------------------------------------
def test_a_version_under_the_models_dir_is_stored_relative_and_resolves_on_another_host(tmp_path):
    import shutil

    from bot.runtime import Runtime

    host_a = settings_with(home=tmp_path / "a", models_dir=tmp_path / "shared-a")
    adapter = write_adapter(tmp_path / "shared-a" / "retrain" / "run1" / "candidate")
    stored = versions.path_to_store(host_a, str(adapter))
    assert stored == "retrain/run1/candidate"
    assert versions.path_to_store(host_a, "sentiment-en") == "sentiment-en"  # references stay as given
    assert versions.path_to_store(host_a, str(write_adapter(tmp_path / "elsewhere"))) == str(tmp_path / "elsewhere")

    # host B mounts the same models at another path, on the same database
    shutil.copytree(tmp_path / "shared-a", tmp_path / "mnt" / "models")
    url = f"sqlite:///{tmp_path / 'one.db'}"
    host_b = settings_with(home=tmp_path / "b", models_dir=tmp_path / "mnt" / "models", database_url=url)
    runtime = Runtime.start(host_b)
    try:
        with runtime.sessions.begin() as s:
            repo.create_model_version(s, task="sentiment", name="v-rel", path=stored)
            versions.activate(s, host_b, "v-rel")  # check_loadable resolves it here
        assert runtime.served_refs()[("sentiment", "default")] == str(tmp_path / "mnt" / "models" / stored)
    finally:
        runtime.close()


def test_an_old_absolute_path_keeps_working(session, settings, tmp_path):
    version = candidate(session, tmp_path)  # stored absolute, as before issue 19
    assert versions.local_path(settings, version.path) == version.path
    versions.activate(session, settings, "sentiment-v9")
    assert versions.local_path(settings, "sentiment-en") == "sentiment-en"
