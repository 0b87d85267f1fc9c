"""The import contract (issue 17), checked in `make test`: core <- storage <- bot <-
finetune <- ui <- app, each importing only its own layer and those below, and no import
cycle between modules. The rules and the checker are tests/fixtures/layers.py; here the
repository is checked, and copies with a planted upward import or cycle must fail."""

from __future__ import annotations

import shutil

import pytest

from fixtures import layers


def test_the_repository_keeps_the_layers():
    assert layers.violations() == []


def test_every_layer_is_a_package_and_nothing_else_is_left_out():
    found = {name.split(".")[0] for name in layers.modules(layers.REPO)}
    assert found == set(layers.LAYERS)


def copy_of_the_packages(tmp_path):
    for package in layers.LAYERS:
        shutil.copytree(layers.REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def plant(path, line):
    path.write_text(path.read_text() + f"\n\ndef _planted():\n    {line}\n")


@pytest.mark.parametrize("file, line, expected", [
    ("storage/export.py", "from bot.sentiment import ROUTE_LANGUAGES", "upward import: storage.export -> bot.sentiment"),
    ("core/errors.py", "import storage.db", "upward import: core.errors -> storage.db"),
    ("bot/runtime.py", "from ui.app import mount_ui", "upward import: bot.runtime -> ui.app"),
    ("bot/versions.py", "from finetune import retrain", "upward import: bot.versions -> finetune.retrain"),
    ("ui/admin.py", "from app.cli import main", "upward import: ui.admin -> app.cli"),
])
def test_a_planted_upward_import_fails(tmp_path, file, line, expected):
    root = copy_of_the_packages(tmp_path)
    assert layers.violations(root) == []
    plant(root / file, line)
    assert layers.violations(root)[0] == expected  # (an upward import usually closes a cycle too)


def test_a_planted_cycle_fails(tmp_path):
    root = copy_of_the_packages(tmp_path)
    plant(root / "finetune/perplexity.py", "from finetune.chat_recipe import ChatArgs")  # chat imports perplexity
    assert layers.violations(root) == ["import cycle: finetune.chat_recipe -> finetune.perplexity"]


def test_relative_imports_are_resolved(tmp_path):
    root = copy_of_the_packages(tmp_path)
    plant(root / "storage/repositories/feedback.py", "from ...bot import versions")
    assert layers.violations(root) == ["upward import: storage.repositories.feedback -> bot.versions"]
