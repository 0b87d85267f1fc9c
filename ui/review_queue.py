"""The review queue panel of the Agent inbox: the customer turns whose labels would teach
the models most (bot.review_queue), ranked, with why; one click confirms the model's label
or corrects it. A decision is stored as the feedback row the feedback API writes,
confirmed by the agent. Every handler checks the caller's role on the server; the panel
takes no files and no paths, only a queue item's id and a label, both checked again by
the service.
"""

from __future__ import annotations

import gradio as gr

from bot.review_queue import MAX_LIMIT, TASKS, ReviewQueue, for_runtime, intent_labels_of
from bot.runtime import Runtime
from bot.sentiment import SENTIMENT_LABELS
from ui.auth import Access
from ui.common import require, staff_caller, user_errors, when

COLUMNS = ["priority", "task", "model's label", "why", "customer turn", "sent", "item"]
ALL = "all"


def queue_rows(items: list[dict]) -> list[list]:
    def why(item: dict) -> str:
        return "; ".join(r["detail"] for r in item["reasons"]) or "no doubt found"

    def label(item: dict) -> str:
        return f"{item['label'] or '-'} {item['confidence'] or 0:.2f}"

    return [[f"{i['priority']:.2f}", i["task"], label(i), why(i), i["text"][:200], when(i["created_at"]),
             item_id(i)] for i in items]


def item_id(item: dict) -> str:
    return f"{item['message_id']}|{item['task']}"


def parse_item(value: str | None) -> tuple[str, str]:
    """(message id, task) of a picked queue item; gr.Error for anything else."""
    message_id, _, task = (value or "").partition("|")
    if not message_id or task not in TASKS:
        raise gr.Error("Pick a turn from the review queue first.")
    return message_id, task


def label_choices(runtime: Runtime, task: str) -> list[str]:
    return list(SENTIMENT_LABELS) if task == "sentiment" else list(intent_labels_of(runtime.intent))


def build_review_queue_panel(runtime: Runtime, access: Access):
    def service() -> ReviewQueue:
        return for_runtime(runtime)

    def refresh(task: str, request: gr.Request):
        caller = staff_caller(access, request)
        with user_errors():
            body = service().list(caller=caller, limit=MAX_LIMIT, task=None if task == ALL else task)
        choices = [(f"{i['priority']:.2f} · {i['task']} · {i['label'] or '-'} · {i['text'][:50]}", item_id(i))
                   for i in body["data"]]
        return queue_rows(body["data"]), gr.update(choices=choices, value=None)

    def picked(value: str | None, request: gr.Request):
        require(access, request)
        if not value:
            return gr.update(choices=[], value=None)
        _, task = parse_item(value)
        return gr.update(choices=label_choices(runtime, task), value=None)

    def decide(value: str | None, label: str | None, task_filter: str, request: gr.Request):
        caller = staff_caller(access, request)
        message_id, task = parse_item(value)
        with user_errors():
            done = service().decide(message_id, task=task, caller=caller, label=label or None)
        verb = "Confirmed" if done["rating"] == "up" else f"Corrected {done['predicted'] or '-'} →"
        rows, choices = refresh(task_filter, request)
        return f"{verb} {done['label']} ({task}).", rows, choices

    def confirm(value: str | None, task_filter: str, request: gr.Request):
        return decide(value, None, task_filter, request)

    def correct(value: str | None, label: str | None, task_filter: str, request: gr.Request):
        if not label:
            raise gr.Error("Choose the right label first.")
        return decide(value, label, task_filter, request)

    with gr.Accordion("Review queue: the labels that would help most", open=False, elem_id="queue"):
        gr.Markdown("Customer turns the models are least sure of, or whose label the conversation contradicts, "
                    "first. Confirm the model's label or correct it: it becomes training data at once.")
        with gr.Row():
            task = gr.Radio([ALL, *TASKS], value=ALL, label="Task", scale=2, elem_id="queue-task")
            refresh_button = gr.Button("Refresh", scale=0, min_width=90, elem_id="queue-refresh")
        table = gr.Dataframe(headers=COLUMNS, datatype=["str"] * len(COLUMNS), interactive=False, wrap=True,
                             elem_id="queue-table")
        with gr.Row():
            # Custom values: the service checks the turn and the label (the choices are per page).
            pick = gr.Dropdown(label="Turn", choices=[], scale=4, allow_custom_value=True, elem_id="queue-pick")
            label = gr.Dropdown(label="Right label", choices=[], scale=2, allow_custom_value=True,
                                elem_id="queue-label")
            confirm_button = gr.Button("Confirm label", variant="primary", scale=0, min_width=120,
                                       elem_id="queue-confirm")
            correct_button = gr.Button("Correct label", scale=0, min_width=120, elem_id="queue-correct")
        status = gr.Markdown(elem_id="queue-status")
    refresh_button.click(refresh, inputs=task, outputs=[table, pick], api_name="review_queue_list")
    task.change(refresh, inputs=task, outputs=[table, pick], api_visibility="private")
    pick.change(picked, inputs=pick, outputs=label, api_visibility="private")
    confirm_button.click(confirm, inputs=[pick, task], outputs=[status, table, pick], api_name="review_queue_confirm")
    correct_button.click(correct, inputs=[pick, label, task], outputs=[status, table, pick],
                         api_name="review_queue_correct")
