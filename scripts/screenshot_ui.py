"""Screenshot the UI of a running server for the README (headless Debian chromium).

    python scripts/screenshot_ui.py http://127.0.0.1:7860 docs/ui-sentiment.png "这部电影的剧情非常好。"
"""

from __future__ import annotations

import sys

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def main() -> None:
    url, out = sys.argv[1], sys.argv[2]
    text = sys.argv[3] if len(sys.argv) > 3 else "The refund took forever and nobody answered my emails."
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(url, wait_until="networkidle")
        page.locator("#sentiment-text textarea").fill(text)
        page.locator("#sentiment-classify").click()
        page.locator("#sentiment-result b").wait_for(timeout=60000)
        page.wait_for_timeout(1500)
        page.screenshot(path=out, full_page=True)
        browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
