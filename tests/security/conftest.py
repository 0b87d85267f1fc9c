"""A real server (uvicorn on a loopback port, API + UI) set up as the README tells a
company to: API keys of every scope and UI users of both roles. The security tests
attack it over HTTP the way the outside probe did (issue 14)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from app.server import create_app
from fixtures.dialogue import make_runtime
from fixtures.server import serve
from storage.repositories import api_keys
from ui.auth import add_user
from fixtures.gradio_events import call

PASSWORDS = {"ana": "agent-password-1", "root": "admin-password-1", "bob": "bob-password-1",
             "carol": "carol-password-1"}


@dataclass
class Env:
    url: str
    runtime: object
    home: Path
    keys: dict[str, str] = field(default_factory=dict)

    def api(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[key]}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def login(self, user: str, password: str | None = None) -> httpx.Client:
        client = httpx.Client(timeout=60)
        r = client.post(self.url + "/login", data={"username": user, "password": password or PASSWORDS[user]})
        assert r.status_code == 200, r.text
        return client


def start_env(home: Path, **settings) -> tuple[Env, object]:
    runtime = make_runtime(home, **settings)
    for user, role in (("ana", "agent"), ("root", "admin"), ("bob", "agent"), ("carol", "agent")):
        add_user(runtime.sessions, user, role, PASSWORDS[user])
    keys = {}
    with runtime.sessions.begin() as session:
        for name, scope in (("shop-a", "customer"), ("shop-b", "customer"), ("desk", "agent"), ("ops", "admin")):
            keys[name] = api_keys.create_api_key(session, name=name, scope=scope)[1]
    return Env("", runtime, home, keys), runtime


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("security")
    environment, runtime = start_env(home, ui_chat_per_minute=600, ui_chat_burst=200)
    with serve(create_app(runtime, ui=True)) as url:
        environment.url = url
        yield environment
    runtime.close()


