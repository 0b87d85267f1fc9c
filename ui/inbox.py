"""The Agent inbox: escalated conversations; read one with per-turn sentiment, reply as a
person, release it back to the bot. Below it, the corrections customers sent (a better
reply, the real sentiment): they teach the models only once an agent confirms them.

Order: conversations whose latest customer turn is negative come first (most negative
first), then the others; newest first within each group. Every text is escaped before
it reaches the page: customers' messages are data, never markup.
"""

from __future__ import annotations

import gradio as gr

from bot.api.schemas import ConversationPublic
from bot.dialogue import conversation_public
from bot.runtime import Runtime
from storage.repositories import conversations as repo
from ui.auth import Access
from ui.common import esc, require, sentiment_badge, staff_caller, user_errors, when

COLUMNS = ["updated", "reason", "last customer sentiment", "last message", "id"]
REVIEW_COLUMNS = ["sent", "message", "correction", "comment", "from", "id"]


def review_rows(items: list[dict]) -> list[list]:
    def correction(i: dict) -> str:
        parts = [f"reply → {i['corrected_reply']}" if i["corrected_reply"] else "",
                 f"sentiment → {i['corrected_sentiment']}" if i["corrected_sentiment"] else "",
                 f"intent → {i['corrected_intent']}" if i["corrected_intent"] else ""]
        return "; ".join(p for p in parts if p)

    return [[when(i["created_at"]), f"[{i['role']}] {i['text'][:120]}", correction(i), i["comment"] or "",
             i["submitted_by"] or "", i["id"]] for i in items]
POLL_S = 3.0


def escalated(runtime: Runtime, limit: int = 200) -> list[dict]:
    with runtime.sessions() as session:
        page = repo.list_conversations(session, status="escalated", limit=limit)
        rows = []
        for c in page.items:
            customer = [m for m in c.messages if m.role == "customer"]
            last = customer[-1] if customer else None
            negative = (last.sentiment_scores or {}).get("negative") if last is not None else None
            if negative is None and last is not None and last.sentiment_label == "negative":
                negative = last.sentiment_score
            rows.append({"id": c.id, "reason": c.escalation_reason or "", "updated": c.updated_at,
                         "sentiment": last.sentiment_label if last is not None else None,
                         "score": last.sentiment_score if last is not None else None,
                         "negative": negative or 0.0, "is_negative": bool(last and last.sentiment_label == "negative"),
                         "last": (c.messages[-1].text if c.messages else "")})
    rows.sort(key=lambda r: (not r["is_negative"], -r["negative"] if r["is_negative"] else 0,
                             -r["updated"].timestamp()))
    return rows


def table(rows: list[dict]) -> list[list]:
    def preview(text: str) -> str:
        text = text.replace("\n", " ")
        return text[:80] + ("…" if len(text) > 80 else "")

    return [[when(r["updated"]), r["reason"], f"{r['sentiment'] or ''} {r['score'] or 0:.2f}".strip(),
             preview(r["last"]), r["id"]] for r in rows]


def history_html(conversation: ConversationPublic | None) -> str:
    """The whole conversation as escaped HTML (no text is ever interpreted as markup)."""
    if conversation is None:
        return "<p><i>Pick a conversation.</i></p>"
    parts = [f'<div class="sb-history"><p><b>Status:</b> {esc(conversation.status)}'
             + (f' · <b>reason:</b> {esc(conversation.escalation_reason)}' if conversation.escalation_reason else "")
             + f' · <b>id:</b> <code>{esc(conversation.id)}</code></p>']
    for m in conversation.messages:
        who = {"customer": "Customer", "bot": "Bot", "agent": f"Agent {m.agent or ''}".strip()}[m.role]
        badge = sentiment_badge(m.sentiment.label, m.sentiment.score) if m.sentiment else ""
        sources = ""
        if m.sources:
            sources = ('<div style="font-size:0.8em;color:#666">Sources: '
                       + "; ".join(f"{esc(s.title)} [{esc(s.id)}]" for s in m.sources) + "</div>")
        background = {"customer": "#f4f6fb", "bot": "#ffffff", "agent": "#eefaf0"}[m.role]
        parts.append(f'<div class="sb-msg sb-{esc(m.role)}" style="border:1px solid #ddd;border-radius:6px;'
                     f'padding:6px 10px;margin:6px 0;background:{background};color:#222">'
                     f'<div style="font-size:0.8em;color:#555"><b>{esc(who)}</b> · {esc(when(m.created_at))} {badge}'
                     f'</div><div class="sb-text" style="white-space:pre-wrap">{esc(m.text)}</div>{sources}</div>')
    parts.append("</div>")
    return "".join(parts)


def build_inbox_tab(runtime: Runtime, access: Access) -> None:
    def refresh(selected: str | None, request: gr.Request):
        require(access, request)
        rows = escalated(runtime)
        choices = [(f"{r['reason'] or '-'} · {(r['sentiment'] or '')} · {r['last'][:50]}", r["id"]) for r in rows]
        ids = {r["id"] for r in rows}
        value = selected if selected in ids else None
        return table(rows), gr.update(choices=choices, value=value)

    def show(conversation_id: str | None, request: gr.Request):
        require(access, request)
        if not conversation_id:
            return history_html(None)
        with runtime.sessions() as session:
            c = repo.get_conversation(session, conversation_id=conversation_id)
            return history_html(conversation_public(c) if c is not None else None)

    def reply(conversation_id: str | None, text: str, agent_name: str, request: gr.Request):
        user = require(access, request)
        if not conversation_id:
            raise gr.Error("Pick a conversation first.")
        with user_errors():
            runtime.dialogue.agent_message(conversation_id, text, agent=user or agent_name or "agent")
        return show(conversation_id, request), ""

    def release(conversation_id: str | None, request: gr.Request):
        require(access, request)
        if not conversation_id:
            raise gr.Error("Pick a conversation first.")
        with user_errors():
            runtime.dialogue.release(conversation_id)
        rows, choices = refresh(None, request)
        return show(conversation_id, request), rows, choices

    def review_list(request: gr.Request):
        require(access, request)
        items = runtime.feedback.pending(limit=200)
        choices = [(f"{i['corrected_reply'] or i['corrected_sentiment'] or i['corrected_intent']} · {i['text'][:40]}",
                    i["id"]) for i in items]
        return review_rows(items), gr.update(choices=choices, value=None)

    def review(decision: str, feedback_id: str | None, request: gr.Request):
        who = staff_caller(access, request)
        if not feedback_id:
            raise gr.Error("Pick a correction first.")
        with user_errors():
            runtime.feedback.review(feedback_id, decision=decision, caller=who)
        rows, choices = review_list(request)
        return f"{'Confirmed' if decision == 'confirm' else 'Rejected'}.", rows, choices

    def review_confirm(feedback_id: str | None, request: gr.Request):
        return review("confirm", feedback_id, request)

    def review_reject(feedback_id: str | None, request: gr.Request):
        return review("reject", feedback_id, request)

    gr.Markdown("Conversations waiting for a person: the most negative first, then the newest.")
    with gr.Row():
        picked = gr.Dropdown(label="Conversation", choices=[], scale=4, elem_id="inbox-pick")
        refresh_button = gr.Button("Refresh", scale=0, min_width=90, elem_id="inbox-refresh")
    rows = gr.Dataframe(headers=COLUMNS, datatype=["str"] * len(COLUMNS), interactive=False, wrap=True,
                        elem_id="inbox-table", label="Escalated conversations")
    history = gr.HTML(history_html(None), elem_id="inbox-history")
    with gr.Row():
        text = gr.Textbox(label="Reply as a person", lines=2, scale=5, elem_id="inbox-reply")
        agent_name = gr.Textbox(label="Your name", value="agent", scale=1, elem_id="inbox-agent")
    with gr.Row():
        send = gr.Button("Send reply", variant="primary", elem_id="inbox-send")
        release_button = gr.Button("Release to the bot", elem_id="inbox-release")

    with gr.Accordion("Customers' corrections to review", open=False, elem_id="review"):
        gr.Markdown("A customer's corrected reply or label teaches the models only once you confirm it.")
        review_table = gr.Dataframe(headers=REVIEW_COLUMNS, datatype=["str"] * len(REVIEW_COLUMNS), interactive=False,
                                    wrap=True, elem_id="review-table")
        with gr.Row():
            review_pick = gr.Dropdown(label="Correction", choices=[], scale=4, elem_id="review-pick")
            review_refresh = gr.Button("Refresh", scale=0, min_width=90, elem_id="review-refresh")
            confirm_button = gr.Button("Confirm", variant="primary", scale=0, min_width=90, elem_id="review-confirm")
            reject_button = gr.Button("Reject", scale=0, min_width=90, elem_id="review-reject")
        review_status = gr.Markdown(elem_id="review-status")
    review_refresh.click(review_list, outputs=[review_table, review_pick], api_name="review_list")
    confirm_button.click(review_confirm, inputs=review_pick, outputs=[review_status, review_table, review_pick],
                         api_name="review_confirm")
    reject_button.click(review_reject, inputs=review_pick, outputs=[review_status, review_table, review_pick],
                        api_name="review_reject")

    refresh_button.click(refresh, inputs=picked, outputs=[rows, picked], api_name="inbox_list")
    picked.change(show, inputs=picked, outputs=history, api_name="inbox_show")
    send.click(reply, inputs=[picked, text, agent_name], outputs=[history, text], api_name="inbox_reply")
    text.submit(reply, inputs=[picked, text, agent_name], outputs=[history, text], api_visibility="private")
    release_button.click(release, inputs=picked, outputs=[history, rows, picked], api_name="inbox_release")
    gr.Timer(POLL_S).tick(show, inputs=picked, outputs=history, api_visibility="private", show_progress="hidden",
                          concurrency_limit=None)
    return refresh, picked, [rows, picked]
