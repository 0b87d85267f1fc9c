"""The Gradio UI (served at / next to the API). A thin client over the bot's services.

For now: the Sentiment page. Tabs for chat, agent inbox, dashboard and admin follow.
"""

from __future__ import annotations

import html
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from bot.runtime import Runtime  # noqa: E402

EXAMPLES = ["The refund took forever", "这部电影很无聊。", "这部电影的剧情非常好。", "Where is my order?",
            "Thanks, the replacement arrived and works great!"]


def _render(result) -> str:
    """Escaped HTML: a text can never inject markup into the page."""
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{score:.3f}</td></tr>" for label, score in result.scores.items()
    )
    return (f"<p><b>{html.escape(result.label)}</b> ({result.score:.3f}) · language "
            f"<code>{html.escape(result.language)}</code></p><table>{rows}</table>")


def build_ui(runtime: Runtime) -> gr.Blocks:
    def classify(text: str):
        if not text or not text.strip():
            raise gr.Error("Type a text to classify.")
        limit = runtime.settings.max_text_chars
        if len(text) > limit:
            raise gr.Error(f"The text has {len(text)} characters; the limit is {limit}.")
        result = runtime.sentiment.classify([text], explain=True)[0]
        # Scaled so the strongest word is fully coloured: with a confident label every
        # single word moves the probability only a little.
        top = max((abs(e["weight"]) for e in result.explanation or []), default=0.0) or 1.0
        highlights = [(e["token"], e["weight"] / top) for e in result.explanation or []]
        return _render(result), highlights, runtime.sentiment.version

    with gr.Blocks(title="supportbot") as demo:
        gr.Markdown("# supportbot\nCustomer-service chat on pretrained language models.")
        with gr.Tab("Sentiment"):
            text = gr.Textbox(label="Text (English or Chinese)", lines=3, elem_id="sentiment-text")
            button = gr.Button("Classify", variant="primary", elem_id="sentiment-classify")
            result = gr.HTML(elem_id="sentiment-result")
            explanation = gr.HighlightedText(label="Which words drove the label (occlusion: probability drop without the word, scaled)",
                                             color_map=None, show_legend=False)
            version = gr.Textbox(label="Model version", interactive=False)
            gr.Examples(EXAMPLES, inputs=text)
            button.click(classify, inputs=text, outputs=[result, explanation, version], api_name="classify")
            text.submit(classify, inputs=text, outputs=[result, explanation, version], api_name=False)
    return demo
