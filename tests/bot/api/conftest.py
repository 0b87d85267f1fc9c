"""The API in-process: `client` wraps the module's own `runtime` fixture (each test module
builds the runtime it needs: fakes, tiny models, keys)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.server import create_app


@pytest.fixture
def client(runtime):
    with TestClient(create_app(runtime, ui=False)) as c:  # server errors raise in the test
        yield c
