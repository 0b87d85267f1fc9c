from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.config import Settings, settings_with


def test_defaults(tmp_path):
    s = Settings()
    assert s.home == Path("var")
    assert s.port == 7860
    assert s.host == "127.0.0.1"
    assert s.sentiment_model_zh == "sentiment-zh-me5"


def test_reads_supportbot_env_vars(monkeypatch, tmp_path):
    monkeypatch.setenv("SUPPORTBOT_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("SUPPORTBOT_PORT", "9123")
    monkeypatch.setenv("SUPPORTBOT_SENTIMENT_MODEL", "org/some-model")
    monkeypatch.setenv("SUPPORTBOT_MAX_TEXTS_PER_REQUEST", "7")
    monkeypatch.setenv("SUPPORTBOT_UI", "false")
    s = Settings()
    assert s.home == tmp_path / "h"
    assert s.port == 9123
    assert s.sentiment_model == "org/some-model"
    assert s.max_texts_per_request == 7
    assert s.ui is False


def test_unprefixed_env_vars_are_ignored(monkeypatch):
    monkeypatch.setenv("PORT", "9999")
    assert Settings().port == 7860


def test_dotenv_in_working_directory_is_read_and_env_wins(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("SUPPORTBOT_PORT=8001\nSUPPORTBOT_HOST=0.0.0.0\n")
    monkeypatch.setenv("SUPPORTBOT_PORT", "8002")
    s = Settings()
    assert s.host == "0.0.0.0"  # from .env
    assert s.port == 8002  # the environment beats .env


def test_overrides_win_and_none_means_not_given(monkeypatch, tmp_path):
    monkeypatch.setenv("SUPPORTBOT_PORT", "9000")
    monkeypatch.setenv("SUPPORTBOT_HOME", str(tmp_path / "from-env"))
    s = settings_with(port=8000, home=None, database_url=None)
    assert s.port == 8000
    assert s.home == tmp_path / "from-env"
    assert s.database_url is None


def test_invalid_values_are_refused(monkeypatch):
    with pytest.raises(ValidationError):
        settings_with(port=70000)
    monkeypatch.setenv("SUPPORTBOT_ENVIRONMENT", "staging")
    with pytest.raises(ValidationError):
        Settings()


def test_resolved_database_url_defaults_to_sqlite_under_home(tmp_path):
    s = settings_with(home=tmp_path / "home")
    assert s.resolved_database_url == f"sqlite:///{(tmp_path / 'home' / 'supportbot.db').resolve()}"
    assert s.model_cache_dir == tmp_path / "home" / "models"


def test_relative_home_resolves_against_working_directory(tmp_path):
    # the autouse fixture runs every test in tmp_path
    s = settings_with(home=Path("rel"))
    assert s.resolved_database_url == f"sqlite:///{(tmp_path / 'rel' / 'supportbot.db').resolve()}"


def test_explicit_database_url_wins(tmp_path):
    s = settings_with(home=tmp_path, database_url="postgresql+psycopg://u@h/db")
    assert s.resolved_database_url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize("value", ["none", "None", ""])
def test_sentiment_model_zh_none_means_one_model(monkeypatch, value):
    monkeypatch.setenv("SUPPORTBOT_SENTIMENT_MODEL_ZH", value)
    assert Settings().sentiment_model_zh is None


def test_sentiment_model_zh_override_none_string():
    assert settings_with(sentiment_model_zh="none").sentiment_model_zh is None
    assert settings_with(sentiment_model_zh="org/zh").sentiment_model_zh == "org/zh"


def test_model_cache_defaults_to_home_and_can_be_moved(monkeypatch, tmp_path):
    assert settings_with(home=tmp_path).model_cache_dir == tmp_path / "models"
    monkeypatch.setenv("SUPPORTBOT_MODEL_CACHE", str(tmp_path / "shared-cache"))
    assert settings_with(home=tmp_path).model_cache_dir == tmp_path / "shared-cache"
