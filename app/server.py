"""supportbot's server: the API (bot/api) with the UI (ui/) mounted, for `supportbot serve`
and as an ASGI application for process managers that run several workers:

    uvicorn app.server:app --workers 4 --host 127.0.0.1 --port 7860
    gunicorn -k uvicorn.workers.UvicornWorker -w 4 -b 127.0.0.1:7860 app.server:app
    supportbot serve --workers 4        # the same, through uvicorn

Settings come from the environment (`SUPPORTBOT_*`, `.env`), as for `serve`. Each worker
process builds its own runtime when the server starts it (ASGI lifespan, or its first
request): schema upgrade under the migration lock (storage.db, so all workers can start
at once), the models loaded, then the app. Importing this module loads nothing.

The bind address is the process manager's: supportbot cannot see it, so it refuses to
start without an API key only when SUPPORTBOT_HOST is not a loopback address: create a
key (`supportbot keys create NAME`) before binding another address. The staff UI keeps its
sessions in one process, so it is served only with a single worker
(`SUPPORTBOT_UI=false` for the others; `serve --workers N` does that itself).
"""

from __future__ import annotations

import logging
import threading

from core.errors import SupportbotError

log = logging.getLogger(__name__)


def create_app(runtime, *, ui: bool = True):
    """The API on a started runtime, with the staff UI at / and the open customer chat at
    /chat unless ui is off; the first API answers are logged with the time they took
    (app.startup)."""
    from app.startup import FirstAnswers
    from bot.api.app import create_api

    app = create_api(runtime)
    if ui:
        from ui.app import mount_ui

        app = mount_ui(app, runtime)
    app.add_middleware(FirstAnswers)
    return app


def refuse_open_public_bind(settings, runtime) -> None:
    """Refuse to listen beyond loopback while no API key exists."""
    import ipaddress

    from storage.repositories import api_keys

    host = settings.host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return
    with runtime.sessions() as session:
        has_key = api_keys.any_active_api_key(session)
    if not has_key:
        raise SupportbotError(f"refusing to listen on {host} while no API key exists: "
                              "run 'supportbot keys create NAME' first, or serve on 127.0.0.1")


def build_app(settings=None):
    """The whole app (API, and the UI unless settings.ui is off) on a started runtime."""
    from app import startup
    from bot import logs
    from core.config import Settings
    from bot.runtime import Runtime, use_offline_hub_for_local_models

    settings = settings or Settings()
    if not logging.getLogger().handlers or settings.log_format == "json":
        logs.configure(settings.log_format, getattr(logging, settings.log_level))
    use_offline_hub_for_local_models(settings)
    runtime = Runtime.start(settings)
    refuse_open_public_bind(settings, runtime)
    startup.load_models(runtime)  # logs how long the start took
    return create_app(runtime, ui=settings.ui)


class LazyApp:
    """An ASGI app that builds the real one (in a thread: loading models takes a while)
    when the server first calls it, then hands every call to it."""

    def __init__(self, build=build_app):
        self._build = build
        self._app = None
        self._lock = threading.Lock()

    def _get(self):
        with self._lock:
            if self._app is None:
                self._app = self._build()
            return self._app

    async def __call__(self, scope, receive, send):
        app = self._app
        if app is None:
            from starlette.concurrency import run_in_threadpool

            app = await run_in_threadpool(self._get)
        await app(scope, receive, send)


app = LazyApp()
