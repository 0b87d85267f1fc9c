"""What the tabs share: the caller's role, uploaded files, turning service errors into UI
errors, escaping."""

from __future__ import annotations

import html
import re
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import gradio as gr

from bot.callers import Caller
from core.errors import SupportbotError
from bot.ratelimit import RateLimitedError
from ui.auth import Access

SENTIMENT_COLOURS = {"negative": "#c0392b", "neutral": "#7f8c8d", "positive": "#27ae60"}


def require(access: Access, request: gr.Request | None, role: str = "agent") -> str:
    """The caller's name; raises gr.Error unless they hold `role` (admin includes agent)."""
    username = getattr(request, "username", None) if request is not None else None
    have = access.role(username)
    if have is None or (role == "admin" and have != "admin"):
        raise gr.Error(f"This needs the {role} role.")
    return username or ""


def staff_caller(access: Access, request: gr.Request | None, role: str = "agent") -> Caller:
    """The logged-in staff member as a Caller (checked now: a removed user is refused)."""
    name = require(access, request, role)
    have = access.role(name or None)
    return Caller(have, f"ui:{name or 'open'}", name or "open")


def client_address(request: gr.Request | None) -> str:
    client = getattr(request, "client", None)
    return getattr(client, "host", None) or "unknown"


def limit(limiter, key: str) -> None:
    """One request of `key` against a RateLimiter; refused as a UI error (with the wait)."""
    if limiter is None:
        return
    try:
        limiter.hit(key)
    except RateLimitedError as exc:
        raise gr.Error(f"Too many requests: please wait {exc.retry_after} s and try again.") from exc


def upload_path(raw) -> Path | None:
    """The resolved path if `raw` names a regular file inside Gradio's upload folder (after
    following links), else None: any other path, `../` tricks, a URL."""
    if not raw or not isinstance(raw, (str, Path)) or re.match(r"^[a-z][a-z0-9+.-]*:", str(raw), re.I):
        return None
    root = Path(gr.utils.get_upload_folder()).resolve()
    try:
        path = Path(raw).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None
    return path if path.is_relative_to(root) and path != root and path.is_file() else None


def uploaded_file(value, suffixes: tuple[str, ...]) -> Path:
    """The path of a file Gradio itself received as an upload, or gr.Error.

    A client can send any path in a FileData (`/etc/passwd`, `../../x.csv`, a link): only a
    regular file inside Gradio's upload folder, after resolving links, is accepted."""
    raw = getattr(value, "path", None) or (value.get("path") if isinstance(value, dict) else value)
    if not raw:
        raise gr.Error("Upload a file first.")
    path = upload_path(raw)
    if path is None:
        raise gr.Error("That file is not an upload: upload it again.")
    if path.suffix.lower() not in suffixes:
        raise gr.Error(f"Upload a {' or '.join(suffixes)} file.")
    return path


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
