from __future__ import annotations

import pytest

from fixtures.env import clean_supportbot_env


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    clean_supportbot_env(monkeypatch, tmp_path)
