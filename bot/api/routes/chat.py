"""/v1/chat/completions and /v1/models, OpenAI-compatible.

Two models are served: `supportbot`, the customer-service pipeline (each call is a
customer turn in a stored conversation; the response carries the extras of API.md), and
the chat model itself by its name, a plain completion over the given messages that is
not stored. The second is what lets one supportbot serve another's generation; it has
none of the pipeline's grounding, so it needs an admin key (or is off:
SUPPORTBOT_PLAIN_MODEL_ENDPOINT=off), and harmful requests are refused there too.
A customer-scope key continues only conversations it created.

OpenAI's conventions: `stream_options.include_usage` adds a last chunk with `usage` and
no choices; `finish_reason` is "length" when the token limit cut the model's reply
(streamed too); `usage.prompt_tokens` counts the prompt the model saw (the generator's
own count of the messages it was given; the customer's text when no model wrote the
reply). Errors here are OpenAI's shape (bot.api.app), so a route attaches `openai_param`
/ `openai_code` to the exceptions it raises.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from typing import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from bot import policy, prompting
from bot.guard import normalise_text
from bot.language import detect_language
from bot.api.auth import AuthError, CallerDep
from bot.api.deps import RuntimeDep, SettingsDep
from bot.callers import Caller
from bot.api.schemas import ChatCompletionRequest
from bot.dialogue import TurnResult
from core.errors import InputError, NotFoundError, PayloadTooLargeError
from bot.generation import GenerationParams
from bot.prometheus import observe_generation
from bot.api.routes.conversations import accessible

router = APIRouter(prefix="/v1", tags=["chat"])

PIPELINE = "supportbot"
_STARTED = int(time.time())


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionCreate(ChatCompletionRequest):
    stream_options: StreamOptions | None = Field(
        None, description="with stream: include_usage adds a last chunk with usage and empty choices")

    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


def _about(exc: Exception, param: str | None, code: str | None = None) -> Exception:
    """Name the request field (and OpenAI's code) an error is about."""
    exc.openai_param, exc.openai_code = param, code
    return exc


class _Watched:
    """The chat model as one request sees it (the Generator protocol, delegating): records
    the generator's own count of the messages it was given, the reply's tokens, whether
    the token limit cut it, and its speed (bot.prometheus)."""

    def __init__(self, inner, *, endpoint: str, started: float):
        self.inner, self.endpoint, self.started = inner, endpoint, started
        self.name, self.context_tokens = inner.name, inner.context_tokens
        self.prompt_tokens: int | None = None  # None: the model was not asked
        self.completion_tokens = 0
        self.cut = False  # the token limit ended the reply

    def __getattr__(self, attr):  # tokenizer, ...
        if attr == "inner":  # not set yet (copying): no recursion
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    def count_tokens(self, messages: list[dict]) -> int:
        return self.inner.count_tokens(messages)

    def stream(self, messages: list[dict], params: GenerationParams) -> Iterator[str]:
        self.prompt_tokens = self.inner.count_tokens(messages)
        limit = max(1, min(params.max_tokens, self.context_tokens - self.prompt_tokens))
        pieces: list[str] = []
        first = None
        ended = False
        try:
            for piece in self.inner.stream(messages, params):
                if first is None:
                    first = time.perf_counter()
                pieces.append(piece)
                yield piece
            ended = True
        finally:
            self.completion_tokens = _tokens(self.inner, "".join(pieces))
            self.cut = ended and self.completion_tokens >= limit
            observe_generation(self.endpoint, first_piece_s=None if first is None else first - self.started,
                               tokens=self.completion_tokens,
                               decode_s=0.0 if first is None else time.perf_counter() - first)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _model_entry(name: str) -> dict:
    return {"id": name, "object": "model", "created": _STARTED, "owned_by": "supportbot"}


@router.get("/models")
def models(runtime: RuntimeDep, caller: CallerDep):
    names = [PIPELINE]
    if runtime.generator is not None and caller.is_admin and runtime.settings.plain_model_endpoint == "admin":
        names.append(runtime.generator.name)
    return {"object": "list", "data": [_model_entry(n) for n in names]}


def _tokens(generator, text: str) -> int:
    tokenizer = getattr(generator, "tokenizer", None)
    if tokenizer is not None:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return max(1, round(len(text) / 3)) if text else 0


def _chunk(cid: str, model: str, delta: dict, finish: str | None = None, *, usage: bool = False, **extra) -> str:
    """One chat.completion.chunk event; `usage`: the client asked for usage, which OpenAI
    sends as null on every chunk but the last."""
    body = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    if usage:
        body["usage"] = None
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def _usage_chunk(cid: str, model: str, usage: dict) -> str:
    body = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [], "usage": usage}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def _error_event(exc: Exception) -> str:
    """An error after the 200 was sent, in OpenAI's error shape."""
    body = {"message": str(exc), "type": "server_error", "param": None, "code": "generation_failed"}
    return f"data: {json.dumps({'error': body}, ensure_ascii=False)}\n\n"


@router.post("/chat/completions", responses={200: {"description": "a chat.completion, or with stream=true "
                                                   "chat.completion.chunk events", "content": {"text/event-stream": {}}}})
def chat_completions(body: ChatCompletionCreate, runtime: RuntimeDep, settings: SettingsDep, caller: CallerDep):
    started = time.perf_counter()
    for i, m in enumerate(body.messages):
        if len(m.text()) > settings.max_text_chars:
            raise _about(PayloadTooLargeError(f"messages[{i}] has {len(m.text())} characters; the limit is "
                                              f"{settings.max_text_chars}"), f"messages[{i}].content",
                         "string_above_max_length")
    params = GenerationParams(
        max_tokens=body.max_completion_tokens or body.max_tokens or settings.chat_max_tokens,
        temperature=body.temperature or 0.0, top_p=body.top_p or 1.0, stop=list(body.stop or []),
        timeout_s=settings.chat_timeout_s)
    model = body.model or PIPELINE
    cid = "chatcmpl-" + uuid.uuid4().hex
    if model == PIPELINE:
        return _pipeline(body, runtime, params, cid, caller, started)
    generator = runtime.generator
    if generator is not None and model == generator.name and settings.plain_model_endpoint == "admin":
        if not caller.is_admin:
            raise _about(AuthError(403, f"the plain model {model!r} needs an admin key; customer services use "
                                        f"model={PIPELINE!r}"), "model")
        return _plain(body, generator, params, cid, started)
    raise _about(NotFoundError(f"model {model!r} is not served here; use {PIPELINE!r} (GET /v1/models)"), "model",
                 "model_not_found")


def _pipeline(body: ChatCompletionCreate, runtime, params: GenerationParams, cid: str, caller: Caller, started: float):
    last = body.messages[-1]
    if last.role != "user" or not last.text().strip():
        raise _about(InputError("the last message must be the customer's (role 'user') and not empty"),
                     f"messages[{len(body.messages) - 1}]")
    dialogue = runtime.dialogue
    conversation_id = body.conversation_id
    try:
        if conversation_id is None:
            earlier = [(m.role, m.text()) for m in body.messages[:-1] if m.role in ("user", "assistant") and m.text()]
            conversation_id = dialogue.create_conversation(channel="api", customer_ref=body.user, history=earlier,
                                                           owner=caller.owner)
        else:
            with runtime.sessions() as session:
                accessible(session, caller, conversation_id)
    except NotFoundError as exc:
        raise _about(exc, "conversation_id") from None
    except InputError as exc:
        raise _about(exc, "user" if "customer_ref" in str(exc) else "messages") from None
    # This turn's own view of the engine: the same services, the chat model watched (what
    # it was given, how its reply ended); the shared engine is left as it is.
    watched = None
    if dialogue.generator is not None:
        watched = _Watched(dialogue.generator, endpoint="pipeline", started=started)
        dialogue = copy.copy(dialogue)
        dialogue.generator = watched
    events = dialogue.stream_turn(conversation_id, last.text(), params)
    try:
        first = next(events)  # errors (unknown conversation, bad text) surface here, before any 200
    except NotFoundError as exc:
        raise _about(exc, "conversation_id") from None
    except InputError as exc:
        raise _about(exc, f"messages[{len(body.messages) - 1}].content") from None
    generator = runtime.generator

    def extras(result: TurnResult) -> dict:
        # message_id: the reply this response carries (what feedback refers to); the
        # customer's stored turn is customer_message_id.
        return {"conversation_id": result.conversation_id,
                "message_id": result.reply.message_id if result.reply else result.message_id,
                "customer_message_id": result.message_id, "sentiment": result.sentiment,
                "escalate": result.escalate, "escalation_reason": result.escalation_reason,
                "sources": result.reply.sources if result.reply else []}

    def held_text(result: TurnResult) -> str:  # a human holds the conversation: nothing stored
        return prompting.text("held", result.language if result.language in prompting.TEXTS else "en")

    def written_by_model(result: TurnResult) -> bool:
        return watched is not None and watched.prompt_tokens is not None and result.model_version == watched.name

    def finish(result: TurnResult) -> str:
        return "length" if written_by_model(result) and watched.cut else "stop"

    def usage(result: TurnResult, text: str) -> dict:
        # the prompt the model saw when it was asked (even if its reply was replaced by
        # the article's); else what the customer said
        prompt = watched.prompt_tokens if watched is not None and watched.prompt_tokens is not None \
            else _tokens(generator, last.text())
        return _usage(prompt, _tokens(generator, text))

    if not body.stream:
        result = None
        for event in _chain(first, events):
            if isinstance(event, TurnResult):
                result = event
        text = result.reply.text if result.reply else held_text(result)
        return _completion(cid, PIPELINE, text, finish(result), usage(result, text), **extras(result))

    with_usage = body.include_usage()

    def sse() -> Iterator[str]:
        yield _chunk(cid, PIPELINE, {"role": "assistant", "content": ""}, usage=with_usage,
                     conversation_id=conversation_id)
        try:
            for event in _chain(first, events):
                if isinstance(event, TurnResult):
                    text = event.reply.text if event.reply else held_text(event)
                    if event.reply is None:
                        yield _chunk(cid, PIPELINE, {"content": text}, usage=with_usage)
                    yield _chunk(cid, PIPELINE, {}, finish(event), usage=with_usage, **extras(event))
                    if with_usage:
                        yield _usage_chunk(cid, PIPELINE, usage(event, text))
                else:
                    yield _chunk(cid, PIPELINE, {"content": event}, usage=with_usage)
        except Exception as exc:  # noqa: BLE001 - the status line is sent: report in the stream
            yield _error_event(exc)
        yield "data: [DONE]\n\n"

    return _event_stream(sse())


def _completion(cid: str, model: str, text: str, finish: str, usage: dict, **extras) -> dict:
    """A whole (non-streamed) chat.completion object."""
    return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": usage, **extras}


def _event_stream(events: Iterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _stream_pieces(body: ChatCompletionCreate, cid: str, model: str, pieces, finish, usage) -> StreamingResponse:
    """SSE chunks of `pieces`, then the finish reason and (if asked) the usage: `finish` and
    `usage` are called once the pieces are done."""
    with_usage = body.include_usage()

    def sse() -> Iterator[str]:
        yield _chunk(cid, model, {"role": "assistant", "content": ""}, usage=with_usage)
        try:
            for piece in pieces:
                yield _chunk(cid, model, {"content": piece}, usage=with_usage)
            yield _chunk(cid, model, {}, finish(), usage=with_usage)
            if with_usage:
                yield _usage_chunk(cid, model, usage())
        except Exception as exc:  # noqa: BLE001 - the status line is sent: report in the stream
            yield _error_event(exc)
        yield "data: [DONE]\n\n"

    return _event_stream(sse())


def _canned(body: ChatCompletionCreate, model: str, cid: str, text: str):
    """A fixed reply in the endpoint's own shapes (JSON or SSE); no model saw anything."""
    if not body.stream:
        return _completion(cid, model, text, "stop", _usage(0, 0))
    return _stream_pieces(body, cid, model, [text], lambda: "stop", lambda: _usage(0, 0))


def _chain(first, rest):
    yield first
    yield from rest


def _plain(body: ChatCompletionCreate, generator, params: GenerationParams, cid: str, started: float):
    roles = {"developer": "system", "tool": "user"}
    messages = [{"role": roles.get(m.role, m.role), "content": normalise_text(m.text())} for m in body.messages]
    asked = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    if policy.refusal(asked):  # harmful requests get the same refusal as customers, without the model
        language = "zh" if detect_language(asked) in ("zh", "ja") else "en"
        return _canned(body, generator.name, cid, prompting.text("refuse", language))
    if messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": prompting.SYSTEM_PROMPT})
    messages = prompting.fit_context(messages, generator.count_tokens, generator.context_tokens - params.max_tokens)
    watched = _Watched(generator, endpoint="plain", started=started)
    pieces = watched.stream(messages, params)
    def finish() -> str:
        return "length" if watched.cut else "stop"

    def usage() -> dict:
        return _usage(watched.prompt_tokens, watched.completion_tokens)

    if not body.stream:
        text = "".join(pieces)  # a GenerationError becomes a 503
        return _completion(cid, generator.name, text, finish(), usage())
    return _stream_pieces(body, cid, generator.name, pieces, finish, usage)
