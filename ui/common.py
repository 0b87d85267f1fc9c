"""What the tabs share: the caller's role, turning service errors into UI errors, escaping."""

from __future__ import annotations

import html
from contextlib import contextmanager
from datetime import datetime

import gradio as gr

from bot.errors import SupportbotError
from ui.auth import Access

SENTIMENT_COLOURS = {"negative": "#c0392b", "neutral": "#7f8c8d", "positive": "#27ae60"}


def require(access: Access, request: gr.Request | None, role: str = "agent") -> str:
    """The caller's name; raises gr.Error unless they hold `role` (admin includes agent)."""
    username = getattr(request, "username", None) if request is not None else None
    have = access.role(username)
    if have is None or (role == "admin" and have != "admin"):
        raise gr.Error(f"This needs the {role} role.")
    return username or ""


@contextmanager
def user_errors():
    """Service errors (bad input, not found, conflict) become a message in the UI."""
    try:
        yield
    except SupportbotError as exc:
        raise gr.Error(str(exc)) from exc


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M")


def sentiment_badge(label: str | None, score: float | None) -> str:
    if not label:
        return ""
    colour = SENTIMENT_COLOURS.get(label, "#555")
    return (f'<span class="sb-badge" style="background:{colour};color:#fff;border-radius:4px;padding:0 6px;'
            f'font-size:0.8em">{esc(label)} {score or 0:.2f}</span>')
