"""The Gradio UI, served next to the API: a thin client over the bot's services.

    /       the staff UI: Chat, Agent inbox (with the review queue), Sentiment, Dashboard,
            Models & training (admin)
    /chat   the customer chat alone, open without a login (settings.ui_open_chat)

Logins (ui/auth.py) are on once a user exists; then `/` asks for one, agents see every
tab but Models & training, and each handler checks the caller's role on the server.

The open `/chat` page gets no file routes at all (no upload, no download, no proxy: the
staff UI's files live in the same Gradio cache), its handlers are rate-limited per client
address, and an unknown endpoint there is a JSON 404.
"""

from __future__ import annotations

import json
import os
import re

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

from bot.ratelimit import RateLimiter  # noqa: E402

from bot.runtime import Runtime  # noqa: E402
from ui.admin import build_admin_tab  # noqa: E402
from ui.auth import Access  # noqa: E402
from ui.customer_chat import build_chat_tab  # noqa: E402
from ui.dashboard import build_dashboard_tab  # noqa: E402
from ui.common import upload_path  # noqa: E402
from ui.inbox import build_inbox_tab  # noqa: E402
from ui.review_queue import build_review_queue_panel  # noqa: E402
from ui.sentiment import build_sentiment_tab  # noqa: E402

TITLE = "supportbot"
CSS = ".sb-history code { font-size: 0.8em; }"


def build_ui(runtime: Runtime, access: Access | None = None) -> gr.Blocks:
    """The staff UI (every tab). `access`: logins and roles (default: from settings)."""
    access = access or Access(runtime.sessions)
    with gr.Blocks(title=TITLE) as demo:
        with gr.Row():
            gr.Markdown("# supportbot\nCustomer-service chat on pretrained language models.")
            who = gr.Markdown(elem_id="whoami")
        with gr.Tab("Chat", id="chat", elem_id="tab-chat"):
            chat_load, chat_inputs, chat_outputs = build_chat_tab(runtime, access=access)
        with gr.Tab("Agent inbox", id="inbox", elem_id="tab-inbox"):
            inbox_load, inbox_inputs, inbox_outputs = build_inbox_tab(runtime, access)
            build_review_queue_panel(runtime, access)
        with gr.Tab("Sentiment", id="sentiment", elem_id="tab-sentiment"):
            build_sentiment_tab(runtime, access)
        with gr.Tab("Dashboard", id="dashboard", elem_id="tab-dashboard") as dashboard_tab:
            dashboard_show, dashboard_inputs, dashboard_outputs = build_dashboard_tab(runtime, access)
        # Drawn when the tab is shown: plots in a hidden tab have no size to draw in.
        dashboard_tab.select(dashboard_show, inputs=dashboard_inputs, outputs=dashboard_outputs,
                             api_visibility="private")
        with gr.Tab("Models & training", id="admin", elem_id="tab-admin") as admin_tab:
            for fn, inputs, outputs in build_admin_tab(runtime, access):
                admin_tab.select(fn, inputs=inputs, outputs=outputs, api_visibility="private")

        def whoami(request: gr.Request):
            username = getattr(request, "username", None)
            role = access.role(username)
            text = f"Signed in as **{username}** ({role}) · [log out](logout)" if access.enabled else ""
            return text, gr.update(visible=role == "admin")

        demo.load(chat_load, inputs=chat_inputs, outputs=chat_outputs, api_visibility="private")
        demo.load(whoami, outputs=[who, admin_tab], api_visibility="private")
        demo.load(inbox_load, inputs=inbox_inputs, outputs=inbox_outputs, api_visibility="private")
    return demo


def build_customer_ui(runtime: Runtime, limiter: RateLimiter | None = None) -> gr.Blocks:
    """The customer chat alone (mounted at /chat): rate-limited per client address."""
    s = runtime.settings
    # Buckets in the database: a visitor's limit holds on every worker and host (bot.ratelimit).
    limiter = limiter or RateLimiter(s.ui_chat_per_minute, s.ui_chat_burst, engine=runtime.engine, namespace="chat")
    new_limiter = RateLimiter(s.ui_chat_conversations_per_hour / 60.0, s.ui_chat_conversations_per_hour,
                              engine=runtime.engine, namespace="chat-new")
    with gr.Blocks(title=f"{TITLE} chat") as demo:
        gr.Markdown("# Lumo Shop support\nAsk about orders, delivery, returns or your account — in English or 中文.")
        chat_load, chat_inputs, chat_outputs = build_chat_tab(runtime, limiter=limiter, new_limiter=new_limiter)
        demo.load(chat_load, inputs=chat_inputs, outputs=chat_outputs, api_visibility="private")
    return demo


# Gradio routes the open customer page must not have: files (the staff UI's downloads sit
# in the same cache), uploads, the proxy, streams, recordings, run history, dev tools.
_CHAT_DENIED = re.compile(r"^/chat/(?:gradio_api/)?(?:file=|file/|proxy=|upload|stream/|process_recording|"
                          r"run-history|runs\b|vibe|dev/|custom_component)")
_CHAT_CALL = re.compile(r"^/chat/(?:gradio_api/)?(?:call|run|api)/([^/]+)")


_EVENT_CALL = re.compile(r"/gradio_api/(?:queue/join|call/|run/|api/)")


def _foreign_files(value) -> list[str]:
    """Paths (or URLs) of FileData values in an event's data that are not Gradio uploads."""
    found = []
    if isinstance(value, dict):
        if isinstance(value.get("path"), str) and ("meta" in value or "orig_name" in value or "url" in value):
            if upload_path(value["path"]) is None:
                found.append(value["path"])
        for item in value.values():
            found += _foreign_files(item)
    elif isinstance(value, list):
        for item in value:
            found += _foreign_files(item)
    return found


class UploadsOnly:
    """ASGI middleware: an event sent to a Gradio app may name only files Gradio received
    as uploads. Mounted in FastAPI, Gradio copies any path a client names into its cache
    before a handler runs (its own check runs only in a launched app), so the check must
    come before Gradio sees the request: anything else is a 403."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not _EVENT_CALL.search(scope["path"]):
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            data = json.loads(body or b"null")
        except ValueError:
            data = None
        foreign = _foreign_files(data)
        if foreign:
            response = JSONResponse({"error": {"type": "forbidden", "message": "only files uploaded to this page "
                                               "can be used: upload the file again"}}, status_code=403)
            return await response(scope, receive, send)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def _chat_endpoints(blocks: gr.Blocks) -> set[str]:
    return {(d.api_name or "").lstrip("/") for d in blocks.fns.values() if d.api_name}


def mount_ui(app: FastAPI, runtime: Runtime) -> FastAPI:
    """Mount /chat (when open) and the staff UI at / (with logins once users exist)."""
    access = Access(runtime.sessions)
    app.add_middleware(UploadsOnly)
    if runtime.settings.ui_open_chat:
        customer = build_customer_ui(runtime)
        known = _chat_endpoints(customer)

        @app.middleware("http")
        async def _chat_boundary(request: Request, call_next):
            path = request.url.path
            if path.startswith("/chat/"):
                if _CHAT_DENIED.match(path):
                    return JSONResponse({"error": {"type": "not_found", "message": "not available on /chat"}},
                                        status_code=404)
                called = _CHAT_CALL.match(path)
                if called and called.group(1) not in known:
                    return JSONResponse({"error": {"type": "not_found",
                                                   "message": f"no endpoint {called.group(1)!r} on /chat"}},
                                        status_code=404)
            return await call_next(request)

        app = gr.mount_gradio_app(app, customer, path="/chat", css=CSS)
    auth = access.check_login if access.enabled else None
    return gr.mount_gradio_app(app, build_ui(runtime, access), path="/", auth=auth, css=CSS,
                               auth_message="supportbot staff login (customers: use /chat)")
