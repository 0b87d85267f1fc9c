"""The Sentiment tab: classify one text with per-word explanation highlights, or label a
whole CSV/TXT file and download it; shows the model version."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path

import gradio as gr

from bot.runtime import Runtime
from storage.csv_cells import escape_cell
from ui.auth import Access
from ui.common import esc, require, uploaded_file

EXAMPLES = ["The refund took forever", "这部电影很无聊。", "这部电影的剧情非常好。", "Where is my order?",
            "Thanks, the replacement arrived and works great!"]
MAX_FILE_ROWS = 20_000
LABEL_COLUMNS = ["label", "score", "language", "negative", "neutral", "positive"]


def render(result) -> str:
    """Escaped HTML: a text can never inject markup into the page."""
    rows = "".join(f"<tr><td>{esc(label)}</td><td>{score:.3f}</td></tr>" for label, score in result.scores.items())
    return (f"<p><b>{esc(result.label)}</b> ({result.score:.3f}) · language "
            f"<code>{esc(result.language)}</code></p><table>{rows}</table>")


def read_texts(path: Path) -> tuple[list[str], list[dict], int]:
    """(header, rows, index of the text column). A .txt file: one text per line. A .csv
    file: the column named `text`, else the first column; a first row that is not
    called `text` is data when the file has a single column."""
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise gr.Error(f"{path.name} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from exc
    if path.suffix.lower() == ".txt":
        lines = [line for line in content.splitlines() if line.strip()]
        return ["text"], [[line] for line in lines], 0
    rows = list(csv.reader(io.StringIO(content, newline="")))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise gr.Error(f"{path.name} has no rows.")
    header = [h.strip() for h in rows[0]]
    lowered = [h.lower() for h in header]
    if "text" in lowered:
        return header, rows[1:], lowered.index("text")
    if len(header) == 1:
        return ["text"], rows, 0
    return header, rows[1:], 0


def label_file(runtime: Runtime, path: str | Path) -> tuple[Path, str]:
    """Label a file the caller uploaded (the handler has checked it is an upload). Every
    cell of the download that a spreadsheet would run as a formula is escaped."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".txt"):
        raise gr.Error("Upload a .csv (with a `text` column) or a .txt file (one text per line).")
    header, rows, column = read_texts(path)
    if len(rows) > MAX_FILE_ROWS:
        raise gr.Error(f"{path.name} has {len(rows)} rows; the limit is {MAX_FILE_ROWS}.")
    limit, batch = runtime.settings.max_text_chars, runtime.settings.max_texts_per_request
    texts = [(r[column] if column < len(r) else "").strip() for r in rows]
    todo = [i for i, t in enumerate(texts) if t]
    results: dict[int, object] = {}
    service = runtime.sentiment
    for start in range(0, len(todo), batch):
        chunk = todo[start:start + batch]
        for i, result in zip(chunk, service.classify([texts[i][:limit] for i in chunk])):
            results[i] = result
    out_dir = Path(tempfile.mkdtemp(prefix="supportbot-labelled-"))
    out = out_dir / f"{path.stem}-labelled.csv"
    counts: dict[str, int] = {}
    with open(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8", newline="") as f:
        writer = _SafeWriter(csv.writer(f))
        writer.writerow(header + LABEL_COLUMNS)
        for i, row in enumerate(rows):
            row = row + [""] * (len(header) - len(row))
            r = results.get(i)
            if r is None:
                writer.writerow(row + ["", "", "", "", "", ""])
                continue
            counts[r.label] = counts.get(r.label, 0) + 1
            writer.writerow(row + [r.label, f"{r.score:.4f}", r.language]
                            + [f"{r.scores.get(k, 0.0):.4f}" for k in ("negative", "neutral", "positive")])
    summary = (f"Labelled {len(results)} of {len(rows)} rows with `{service.version}`: "
               + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ".")
    if len(results) < len(rows):
        summary += f" {len(rows) - len(results)} empty rows were left unlabelled."
    return out, summary


class _SafeWriter:
    """csv.writer whose cells never start a spreadsheet formula (storage.csv_cells)."""

    def __init__(self, writer):
        self.writer = writer

    def writerow(self, row):
        self.writer.writerow([escape_cell(str(cell)) for cell in row])


def build_sentiment_tab(runtime: Runtime, access: Access) -> None:
    def classify(text: str, request: gr.Request):
        require(access, request)
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
        return render(result), highlights, runtime.sentiment.version

    def label_upload(file, request: gr.Request):
        require(access, request)
        if not file:
            raise gr.Error("Upload a .csv or .txt file first.")
        out, summary = label_file(runtime, uploaded_file(file, (".csv", ".txt")))
        return str(out), summary, runtime.sentiment.version

    text = gr.Textbox(label="Text (English or Chinese)", lines=3, elem_id="sentiment-text")
    button = gr.Button("Classify", variant="primary", elem_id="sentiment-classify")
    result = gr.HTML(elem_id="sentiment-result")
    explanation = gr.HighlightedText(
        label="Which words drove the label (occlusion: probability drop without the word, scaled)",
        color_map=None, show_legend=False)
    version = gr.Textbox(label="Model version", interactive=False, elem_id="sentiment-version")
    gr.Examples(EXAMPLES, inputs=text)
    button.click(classify, inputs=text, outputs=[result, explanation, version], api_name="classify")
    text.submit(classify, inputs=text, outputs=[result, explanation, version], api_visibility="private")

    gr.Markdown("### Label a file\nA `.csv` with a `text` column (else the first column is used), or a `.txt` "
                "with one text per line. The download has the original columns plus label, score, language "
                "and the three class scores.")
    with gr.Row():
        upload = gr.File(label="CSV or TXT", file_types=[".csv", ".txt"], elem_id="sentiment-upload")
        labelled = gr.File(label="Labelled CSV", interactive=False, elem_id="sentiment-download")
    label_button = gr.Button("Label the file", elem_id="sentiment-label-file")
    summary = gr.Markdown(elem_id="sentiment-file-summary")
    label_button.click(label_upload, inputs=upload, outputs=[labelled, summary, version], api_name="label_file")
