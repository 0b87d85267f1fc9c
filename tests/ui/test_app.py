"""The Gradio UI mounted at / next to the API, called through gradio_client."""

from __future__ import annotations

import httpx
import pytest

from app.server import create_app
from core.config import settings_with
from bot.runtime import Runtime
from bot.sentiment import SentimentService
from fixtures.fakes import KeywordClassifier
from fixtures.server import serve


@pytest.fixture()
def live_server(tmp_path):
    runtime = Runtime.start(settings_with(home=tmp_path), sentiment=SentimentService(KeywordClassifier("kw-en")))
    with serve(create_app(runtime, ui=True)) as url:
        yield url
    runtime.close()


def test_ui_page_and_api_share_one_server(live_server):
    page = httpx.get(live_server + "/", timeout=10)
    assert page.status_code == 200 and "gradio" in page.text.lower()
    api = httpx.post(live_server + "/v1/sentiment", json={"texts": ["I love it"]}, timeout=10)
    assert api.status_code == 200 and api.json()["results"][0]["label"] == "positive"


def test_classify_endpoint_through_gradio_client(live_server):
    from gradio_client import Client

    client = Client(live_server + "/", verbose=False)
    html, highlights, version = client.predict("I hate waiting <script>alert(1)</script>", api_name="/classify")
    assert "<b>negative</b>" in html
    assert "<script>" not in html  # the text never reaches the page unescaped
    assert version == "kw-en"
    words = [h["token"] for h in highlights] if isinstance(highlights, list) else []
    assert words, highlights


def test_classify_rejects_empty_text(live_server):
    from gradio_client import Client

    client = Client(live_server + "/", verbose=False)
    with pytest.raises(Exception, match="Type a text"):
        client.predict("   ", api_name="/classify")
