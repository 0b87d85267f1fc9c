"""The Chat tab: what a customer sees.

Replies stream in; each bot reply lists its sources, each customer turn shows its
sentiment; 👍/👎 (with an optional correction) on any bot reply goes to
`runtime.feedback`. The conversation lives on the server and its handle is put in the
page's address (`?c=…`), so a reload (or the handle typed in) reopens it. While a person
holds the conversation, the tab polls for their replies.

Two ways to mount it:
- the staff UI's Chat tab (`access` given): every handler checks the caller's current
  role; conversations belong to the user, any conversation can be opened by its id;
- the open customer page `/chat` (no `access`): no login, so each conversation carries a
  secret (the handle is `ID.SECRET`; only its sha256 is stored) and opens only with it;
  conversations made elsewhere (API, staff) never open here; sending, handing off, rating
  and opening are rate-limited per client address, new conversations capped per client;
  a customer's corrections wait for an agent's review (bot.feedback).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
from types import SimpleNamespace

import gradio as gr

from bot.api.schemas import ConversationPublic
from bot.callers import CHAT
from bot.dialogue import TurnResult, conversation_public
from bot.runtime import Runtime
from storage.repositories import conversations as repo
from ui.auth import Access
from ui.common import client_address, limit, staff_caller, user_errors

HANDOFF_TEXT = {"en": "I want to talk to a human", "zh": "我要转人工"}
LANGUAGES = [("English", "en"), ("中文", "zh")]
LABELS = {
    "en": {"placeholder": "Type your question…", "status_escalated": "A person from our team will reply here.",
           "status_open": "", "sources": "Sources", "sentiment": "sentiment"},
    "zh": {"placeholder": "请输入您的问题…", "status_escalated": "人工客服会在这里回复您。",
           "status_open": "", "sources": "来源", "sentiment": "情绪"},
}
POLL_S = 2.0  # how often an open chat looks for a person's replies

# The address bar follows the conversation (a reload reopens it). Runs in the browser.
SET_URL_JS = """(c) => { const u = new URL(window.location.href);
  if (c) { u.searchParams.set('c', c); } else { u.searchParams.delete('c'); }
  window.history.replaceState(null, '', u.toString()); return c; }"""


def plain(text: str) -> str:
    """What the Chatbot shows as plain text. With render_markdown=False it still renders
    (sanitised) HTML, so every text is escaped: `<img …>` shows as those characters."""
    return html.escape(text, quote=False)


def render(conversation: ConversationPublic, language: str = "en") -> tuple[list[dict], list[str | None]]:
    """Chatbot messages (escaped plain text) and the id of the stored message behind
    each, for feedback."""
    words = LABELS.get(language, LABELS["en"])
    messages, ids = [], []
    for m in conversation.messages:
        if m.role == "customer":
            text = m.text
            if m.sentiment:
                text += f"\n\n({words['sentiment']}: {m.sentiment.label} {m.sentiment.score:.2f})"
            messages.append({"role": "user", "content": plain(text)})
        else:
            text = m.text
            if m.role == "agent":
                text = f"[{m.agent or 'agent'}] {text}"
            if m.sources:
                text += f"\n\n{words['sources']}: " + "; ".join(f"{s.title} [{s.id}]" for s in m.sources)
            messages.append({"role": "assistant", "content": plain(text)})
        ids.append(m.id)
    return messages, ids


def load(runtime: Runtime, conversation_id: str) -> ConversationPublic | None:
    with runtime.sessions() as session:
        c = repo.get_conversation(session, conversation_id=conversation_id)
        return conversation_public(c) if c is not None else None


def new_handle() -> tuple[str, str]:
    """(secret, its sha256) for a new /chat conversation."""
    secret = secrets.token_urlsafe(18)
    return secret, hashlib.sha256(secret.encode()).hexdigest()


def open_handle(runtime: Runtime, handle: str) -> str | None:
    """The conversation id a /chat handle `ID.SECRET` opens, or None (wrong secret, no
    secret, or a conversation not made on /chat)."""
    conversation_id, _, secret = (handle or "").strip().partition(".")
    if not conversation_id or not secret or len(handle) > 200:
        return None
    with runtime.sessions() as session:
        c = repo.get_conversation(session, conversation_id=conversation_id)
        stored = c.access_token_hash if c is not None and c.owner == CHAT.owner else None
    digest = hashlib.sha256(secret.encode()).hexdigest()
    return conversation_id if stored and hmac.compare_digest(stored, digest) else None


def reply_choices(conversation: ConversationPublic) -> list[tuple[str, str]]:
    """The bot's and agents' replies, newest first, as (label, message id)."""
    out = []
    n = 0
    for m in conversation.messages:
        if m.role in ("bot", "agent"):
            n += 1
            preview = m.text.replace("\n", " ")
            out.append((f"#{n}: {preview[:70]}{'…' if len(preview) > 70 else ''}", m.id))
    return out[::-1]


def status_line(conversation: ConversationPublic | None, language: str) -> str:
    if conversation is None:
        return ""
    words = LABELS.get(language, LABELS["en"])
    if conversation.status == "escalated":
        return f"🧑‍💼 {words['status_escalated']}"
    return ""


def build_chat_tab(runtime: Runtime, *, access: Access | None = None, limiter=None, new_limiter=None,
                   prefix: str = "chat") -> tuple:
    """The tab's components and events, inside the caller's gr.Blocks/gr.Tab. `access`:
    the staff UI's logins (None: the open customer page); `limiter` / `new_limiter`:
    per-client RateLimiters for requests and for new conversations (customer page).
    Returns what the page runs on load: (function, inputs, outputs)."""
    events = ChatEvents(runtime, access, limiter, new_limiter)
    ui = SimpleNamespace(state=gr.State({"ids": [], "count": 0, "busy": False}),
                         **conversation_bar(prefix, events.customer), **conversation_view(prefix),
                         **feedback_panel(prefix))
    wire_turns(ui, events)
    wire_feedback(ui, events)
    wire_polling(ui, events)
    return events.on_load, [ui.language, ui.state], [ui.conversation_id, *view_outputs(ui)]


class ChatEvents:
    """What the tab's events do. Staff tab (`access` given): every handler checks the
    caller's current role. Customer page (`access` None): handles carry a secret and
    every handler is rate-limited per client address."""

    def __init__(self, runtime: Runtime, access: Access | None, limiter, new_limiter):
        self.runtime, self.access = runtime, access
        self.limiter, self.new_limiter = limiter, new_limiter
        self.customer = access is None

    # -- who asks, for which conversation -------------------------------------------------

    def caller(self, request: gr.Request | None):
        if self.customer:
            limit(self.limiter, "chat:" + client_address(request))
            return CHAT
        return staff_caller(self.access, request)

    def resolve(self, handle: str, request: gr.Request | None) -> str | None:
        """The conversation id behind what the page holds, if this caller may open it."""
        handle = (handle or "").strip()
        if not handle:
            return None
        if self.customer:
            return open_handle(self.runtime, handle)
        conversation_id = handle.partition(".")[0]
        return conversation_id if load(self.runtime, conversation_id) is not None else None

    def create(self, request: gr.Request | None, who) -> tuple[str, str]:
        """A new conversation: (its id, the handle the page keeps)."""
        if self.customer:
            limit(self.new_limiter, "chat-new:" + client_address(request))
            secret, digest = new_handle()
            cid = self.runtime.dialogue.create_conversation(channel="chat", owner=CHAT.owner,
                                                            access_token_hash=digest)
            return cid, f"{cid}.{secret}"
        cid = self.runtime.dialogue.create_conversation(channel="ui", owner=who.owner)
        return cid, cid

    def view(self, conversation_id: str, language: str, state: dict):
        """(chatbot messages, reply picker, status line, state) for the conversation."""
        conversation = load(self.runtime, conversation_id) if conversation_id else None
        if conversation is None:
            state.update(ids=[], count=0)
            return [], gr.update(choices=[], value=None), "", state
        messages, ids = render(conversation, language)
        state.update(ids=ids, count=len(ids), status=conversation.status)
        choices = reply_choices(conversation)
        return (messages, gr.update(choices=choices, value=choices[0][1] if choices else None),
                status_line(conversation, language), state)

    # -- a turn, a hand-over, opening and starting conversations --------------------------

    def send(self, text: str, handle: str, language: str, state: dict, request: gr.Request):
        """Streams the reply into the chatbot, then shows the stored conversation."""
        who = self.caller(request)
        if not text or not text.strip():
            raise gr.Error("Type a message first.")
        handle = (handle or "").strip()
        with user_errors():
            conversation_id = self.resolve(handle, request)
            if conversation_id is None:
                conversation_id, handle = self.create(request, who)
            before = load(self.runtime, conversation_id)
            messages, _ = render(before, language)
            messages.append({"role": "user", "content": plain(text)})
            state["busy"] = True
            try:
                partial = ""
                for event in self.runtime.dialogue.stream_turn(conversation_id, text):
                    if isinstance(event, TurnResult):
                        break
                    partial += event
                    yield (messages + [{"role": "assistant", "content": plain(partial)}], handle, "",
                           gr.skip(), gr.skip(), state)
            finally:
                state["busy"] = False
        out = self.view(conversation_id, language, state)
        yield out[0], handle, "", out[1], out[2], out[3]

    def handoff(self, handle: str, language: str, state: dict, request: gr.Request):
        yield from self.send(HANDOFF_TEXT.get(language, HANDOFF_TEXT["en"]), handle, language, state, request)

    def open_conversation(self, handle: str, language: str, state: dict, request: gr.Request):
        self.caller(request)
        handle = (handle or "").strip()
        conversation_id = self.resolve(handle, request)
        if handle and conversation_id is None:
            raise gr.Error("No such conversation (check the link or id).")
        return (handle, *self.view(conversation_id or "", language, state))

    def new_conversation(self, state: dict):
        state.update(ids=[], count=0)
        return "", [], gr.update(choices=[], value=None), "", state

    def on_load(self, language: str, state: dict, request: gr.Request):
        """The conversation in the page's address (`?c=…`), if this caller may open it."""
        handle = (request.query_params.get("c") or "").strip() if request is not None else ""
        allowed = self.customer or self.access.role(getattr(request, "username", None)) is not None
        conversation_id = self.resolve(handle, request) if allowed else None
        if conversation_id is None:
            handle = ""
        return (handle, *self.view(conversation_id or "", language, state))

    def poll(self, handle: str, language: str, state: dict, request: gr.Request):
        """New messages from a person (or another tab) since the last render."""
        if not handle or state.get("busy"):
            return gr.skip(), gr.skip(), gr.skip(), state
        if not self.customer and self.access.role(getattr(request, "username", None)) is None:
            return gr.skip(), gr.skip(), gr.skip(), state  # logged out or removed: nothing more
        conversation_id = self.resolve(handle, request)
        if conversation_id is None:
            return gr.skip(), gr.skip(), gr.skip(), state
        with self.runtime.sessions() as session:
            c = repo.get_conversation(session, conversation_id=conversation_id)
            count = len(c.messages) if c is not None else 0
            status = c.status if c is not None else None
        if count == state.get("count") and status == state.get("status"):
            return gr.skip(), gr.skip(), gr.skip(), state
        return self.view(conversation_id, language, state)

    # -- feedback -------------------------------------------------------------------------

    def rate(self, rating: str, message_id: str | None, correction: str, comment: str,
             sentiment_fix: str | None, handle: str, request: gr.Request):
        who = self.caller(request)
        if not message_id:
            raise gr.Error("There is no reply to rate yet.")
        conversation_id = self.resolve(handle, request)
        if self.customer and conversation_id is None:
            raise gr.Error("Open your conversation first.")
        with user_errors():
            feedback_id = self.runtime.feedback.record(
                message_id=message_id, rating=rating, comment=(comment or "").strip() or None,
                corrected_reply=(correction or "").strip() or None, corrected_sentiment=sentiment_fix or None,
                caller=who, conversation_id=conversation_id if self.customer else None)
        return f"Thank you! Feedback saved ({'👍' if rating == 'up' else '👎'}).", "", "", None, feedback_id

    def rate_up(self, message_id, correction, comment, sentiment_fix, handle, request: gr.Request):
        return self.rate("up", message_id, correction, comment, sentiment_fix, handle, request)

    def rate_down(self, message_id, correction, comment, sentiment_fix, handle, request: gr.Request):
        return self.rate("down", message_id, correction, comment, sentiment_fix, handle, request)

    def like(self, data: gr.LikeData, handle: str, state: dict, request: gr.Request):
        who = self.caller(request)
        ids = state.get("ids") or []
        index = data.index if isinstance(data.index, int) else data.index[0]
        if not 0 <= index < len(ids):
            raise gr.Error("That message is not stored yet.")
        conversation_id = self.resolve(handle, request)
        with user_errors():
            self.runtime.feedback.record(message_id=ids[index], rating="up" if data.liked else "down", caller=who,
                                         conversation_id=conversation_id if self.customer else None)
        gr.Info("Thank you for the feedback.")


# ---- the components, top to bottom --------------------------------------------------------
def conversation_bar(prefix: str, customer: bool) -> dict:
    """Language, the conversation's code or id, Open, New conversation."""
    with gr.Row():
        language = gr.Radio(LANGUAGES, value="en", label="Language / 语言", elem_id=f"{prefix}-language", scale=2)
        conversation_id = gr.Textbox(label=("Conversation code (keep it private; paste it to reopen the chat)" if customer
                                            else "Conversation id (paste one to reopen it)"),
                                     elem_id=f"{prefix}-conversation", scale=3)
        open_button = gr.Button("Open", elem_id=f"{prefix}-open", scale=0, min_width=80)
        new_button = gr.Button("New conversation", elem_id=f"{prefix}-new", scale=0, min_width=120)
    return dict(language=language, conversation_id=conversation_id, open_button=open_button, new_button=new_button)


def conversation_view(prefix: str) -> dict:
    """The status line, the chatbot, the message box with Send and Talk to a person."""
    status = gr.Markdown(elem_id=f"{prefix}-status")
    chatbot = gr.Chatbot(label="supportbot", elem_id=f"{prefix}-chatbot", height=420,
                         render_markdown=False, sanitize_html=True, allow_tags=False)
    with gr.Row():
        message = gr.Textbox(show_label=False, placeholder=LABELS["en"]["placeholder"], lines=1, scale=5,
                             elem_id=f"{prefix}-message")
        send_button = gr.Button("Send", variant="primary", scale=0, min_width=90, elem_id=f"{prefix}-send")
        person_button = gr.Button("Talk to a person / 转人工", scale=0, min_width=170, elem_id=f"{prefix}-person")
    return dict(status=status, chatbot=chatbot, message=message, send_button=send_button,
                person_button=person_button)


def feedback_panel(prefix: str) -> dict:
    """Rate a reply: which one, the real sentiment, a better reply, a comment, 👍/👎."""
    with gr.Accordion("Rate a reply / 评价回复", open=False, elem_id=f"{prefix}-feedback"):
        with gr.Row():
            target = gr.Dropdown(label="Reply", choices=[], scale=3, elem_id=f"{prefix}-feedback-target")
            sentiment_fix = gr.Dropdown(["negative", "neutral", "positive"], label="My message's sentiment was really…",
                                        value=None, scale=1, elem_id=f"{prefix}-feedback-sentiment")
        correction = gr.Textbox(label="A better reply (optional)", lines=2, elem_id=f"{prefix}-correction")
        comment = gr.Textbox(label="Comment (optional)", lines=1, elem_id=f"{prefix}-comment")
        with gr.Row():
            up = gr.Button("👍 Helpful", elem_id=f"{prefix}-up")
            down = gr.Button("👎 Not helpful", elem_id=f"{prefix}-down")
        feedback_status = gr.Markdown(elem_id=f"{prefix}-feedback-status")
        feedback_id = gr.Textbox(visible=False)
    return dict(target=target, sentiment_fix=sentiment_fix, correction=correction, comment=comment, up=up, down=down,
                feedback_status=feedback_status, feedback_id=feedback_id)


# ---- the events ---------------------------------------------------------------------------
def view_outputs(ui: SimpleNamespace) -> list:
    return [ui.chatbot, ui.target, ui.status, ui.state]


def wire_turns(ui: SimpleNamespace, events: ChatEvents) -> None:
    """Send (button or Enter), Talk to a person, Open, New conversation, the language; the
    address bar follows the conversation after each."""
    turn_outputs = [ui.chatbot, ui.conversation_id, ui.message, ui.target, ui.status, ui.state]
    for trigger, api_name in ((ui.send_button.click, "chat_send"), (ui.message.submit, None)):
        trigger(events.send, inputs=[ui.message, ui.conversation_id, ui.language, ui.state], outputs=turn_outputs,
                api_name=api_name, api_visibility="public" if api_name else "private", concurrency_limit=4,
                ).then(None, inputs=ui.conversation_id, js=SET_URL_JS)
    ui.person_button.click(events.handoff, inputs=[ui.conversation_id, ui.language, ui.state], outputs=turn_outputs,
                           api_name="chat_handoff", concurrency_limit=4,
                           ).then(None, inputs=ui.conversation_id, js=SET_URL_JS)
    ui.open_button.click(events.open_conversation, inputs=[ui.conversation_id, ui.language, ui.state],
                         outputs=[ui.conversation_id, *view_outputs(ui)], api_name="chat_open",
                         ).then(None, inputs=ui.conversation_id, js=SET_URL_JS)
    ui.new_button.click(events.new_conversation, inputs=ui.state,
                        outputs=[ui.conversation_id, ui.chatbot, ui.target, ui.status, ui.state],
                        api_visibility="private").then(None, inputs=ui.conversation_id, js=SET_URL_JS)
    ui.language.change(lambda lang: gr.update(placeholder=LABELS[lang]["placeholder"]), inputs=ui.language,
                       outputs=ui.message, api_visibility="private")


def wire_feedback(ui: SimpleNamespace, events: ChatEvents) -> None:
    """👍/👎 with the panel's corrections, and the chatbot's own like buttons."""
    feedback_inputs = [ui.target, ui.correction, ui.comment, ui.sentiment_fix, ui.conversation_id]
    feedback_outputs = [ui.feedback_status, ui.correction, ui.comment, ui.sentiment_fix, ui.feedback_id]
    ui.up.click(events.rate_up, inputs=feedback_inputs, outputs=feedback_outputs, api_name="chat_feedback_up")
    ui.down.click(events.rate_down, inputs=feedback_inputs, outputs=feedback_outputs, api_name="chat_feedback_down")
    ui.chatbot.like(events.like, inputs=[ui.conversation_id, ui.state], outputs=None, api_visibility="private")


def wire_polling(ui: SimpleNamespace, events: ChatEvents) -> None:
    """While the page is open, a person's replies (and other tabs' turns) show up."""
    timer = gr.Timer(POLL_S)
    timer.tick(events.poll, inputs=[ui.conversation_id, ui.language, ui.state], outputs=view_outputs(ui),
               api_visibility="private", show_progress="hidden", concurrency_limit=None)
