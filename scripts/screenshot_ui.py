"""Screenshot every tab of a running server's UI for the README (headless Debian chromium).

    SUPPORTBOT_HOME=var/ui-demo supportbot serve --port 7870 &
    python scripts/screenshot_ui.py http://127.0.0.1:7870 docs --seed

--seed first writes a few demo conversations through the HTTP API (an answered one in
each language, an upset customer handed to a person, a question the knowledge base
cannot answer, feedback), so the inbox and the dashboard have something to show.
Writes docs/ui-chat.png, ui-inbox.png, ui-sentiment.png, ui-dashboard.png, ui-admin.png.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import httpx
from PIL import Image
from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
MAX_BYTES = 300_000


def seed(url: str) -> None:
    api = httpx.Client(base_url=url + "/v1", timeout=300)

    def conversation(*texts: str) -> tuple[str, list[dict]]:
        cid = api.post("/conversations", json={"channel": "demo"}).raise_for_status().json()["id"]
        return cid, [api.post(f"/conversations/{cid}/messages", json={"text": t}).raise_for_status().json()
                     for t in texts]

    _, turns = conversation("How many days do I have to return an item?", "Thanks!")
    api.post("/feedback", json={"message_id": turns[0]["reply"]["message_id"], "rating": "up"})
    _, turns = conversation("请问可以开发票吗？")
    api.post("/feedback", json={"message_id": turns[0]["reply"]["message_id"], "rating": "up"})
    _, turns = conversation("Can you engrave my name on the bottle?")
    api.post("/feedback", json={"message_id": turns[0]["reply"]["message_id"], "rating": "down",
                                "corrected_reply": "Engraving is not offered; a person can suggest alternatives."})
    conversation("My package arrived damaged and nobody answers my emails. This is the worst shop ever, "
                 "I want a refund now!")
    cid, _ = conversation("Where is my order? It has been two weeks.", "I want to talk to a human")
    api.post(f"/conversations/{cid}/agent-messages",
             json={"text": "Hi, this is Ana from Lumo Shop. I am checking with the courier now.", "agent": "ana"})


def shrink(path: Path) -> None:
    """Quantise to a palette when the PNG is over MAX_BYTES (UI screenshots have few colours)."""
    if path.stat().st_size <= MAX_BYTES:
        return
    Image.open(path).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", action="store_true", help="write demo conversations first")
    args = parser.parse_args()
    url = args.url.rstrip("/")
    if args.seed:
        seed(url)
    args.out.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.set_default_timeout(180_000)

        def shot(name: str) -> None:
            page.wait_for_timeout(1500)
            path = args.out / f"ui-{name}.png"
            page.screenshot(path=str(path), full_page=True)
            shrink(path)
            shots.append(path)

        page.goto(url + "/", wait_until="load")
        page.locator("#chat-message textarea").fill("How long does shipping take?")
        page.locator("#chat-send").click()
        page.locator("#chat-chatbot").get_by_text("Sources:").first.wait_for()
        page.locator("#chat-language").get_by_text("中文").click()
        page.locator("#chat-message textarea").fill("请问可以开发票吗？")
        page.locator("#chat-send").click()
        page.locator("#chat-chatbot").get_by_text("来源:").first.wait_for()
        page.locator("#chat-feedback").get_by_text("Rate a reply").click()
        shot("chat")

        page.get_by_role("tab", name="Agent inbox").click()
        page.locator("#inbox-refresh").click()
        page.locator("#inbox-pick input").click()
        page.get_by_role("option").filter(has_text="this is Ana").first.click()
        page.locator("#inbox-history").get_by_text("I am checking with the courier").wait_for()
        page.locator("#inbox-reply textarea").fill("The courier confirms delivery tomorrow before noon.")
        shot("inbox")

        page.get_by_role("tab", name="Sentiment").click()
        page.locator("#sentiment-text textarea").fill("The refund took forever and nobody answered my emails.")
        page.locator("#sentiment-classify").click()
        page.locator("#sentiment-result b").wait_for()
        with tempfile.TemporaryDirectory() as tmp:
            reviews = Path(tmp) / "reviews.csv"
            with reviews.open("w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows([["id", "text"], [1, "Fast delivery, thank you!"],
                                         [2, "这部电影很无聊。"], [3, "Where is my order?"]])
            page.locator("#sentiment-upload input[type=file]").set_input_files(str(reviews))
            page.locator("#sentiment-upload").get_by_text("reviews.csv").wait_for()
            page.locator("#sentiment-label-file").click()
            page.locator("#sentiment-file-summary").get_by_text("Labelled").wait_for()
        shot("sentiment")

        page.get_by_role("tab", name="Dashboard").click()
        page.locator("#dashboard-summary").get_by_text("escalation rate").wait_for()
        page.locator("#plot-activity canvas, #plot-activity svg.marks").first.wait_for()
        shot("dashboard")

        page.get_by_role("tab", name="Models & training").click()
        page.locator("#admin-versions").wait_for()
        shot("admin")
        browser.close()
    for path in shots:
        print(f"wrote {path} ({path.stat().st_size // 1000} KB)")


if __name__ == "__main__":
    main()
