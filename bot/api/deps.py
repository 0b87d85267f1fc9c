"""Typed dependencies for the routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from core.config import Settings
from bot.dialogue import DialogueEngine
from core.errors import DatabaseUnavailableError
from bot.runtime import Runtime
from bot.sentiment import SentimentService


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_settings_dep(runtime: RuntimeDep) -> Settings:
    return runtime.settings


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    session = runtime.sessions()
    try:
        yield session
        session.commit()
    except OperationalError as exc:
        session.rollback()
        raise DatabaseUnavailableError(f"database unavailable: {exc.orig}") from exc
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()


def get_sentiment(runtime: RuntimeDep) -> SentimentService:
    return runtime.sentiment


def get_dialogue(runtime: RuntimeDep):
    return runtime.dialogue


def get_generator(runtime: RuntimeDep):
    return runtime.generator


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]
SentimentDep = Annotated[SentimentService, Depends(get_sentiment)]
DialogueDep = Annotated[DialogueEngine, Depends(get_dialogue)]
