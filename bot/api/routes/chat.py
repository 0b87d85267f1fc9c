"""/v1/chat/completions and /v1/models, OpenAI-compatible.

Two models are served: `supportbot`, the customer-service pipeline (each call is a
customer turn in a stored conversation; the response carries the extras of API.md), and
the chat model itself by its name, a plain completion over the given messages that is
not stored. The second is what lets one supportbot serve another's generation; it has
none of the pipeline's grounding, so it needs an admin key (or is off:
SUPPORTBOT_PLAIN_MODEL_ENDPOINT=off), and harmful requests are refused there too.
A customer-scope key continues only conversations it created.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from bot import policy, prompting
from bot.guard import normalise_text
from bot.language import detect_language
from bot.api.auth import AuthError, CallerDep
from bot.api.deps import RuntimeDep, SettingsDep
from bot.callers import Caller
from bot.api.schemas import ChatCompletionRequest
from bot.dialogue import TurnResult
from bot.errors import InputError, NotFoundError, PayloadTooLargeError
from bot.generation import GenerationParams
from bot.api.routes.conversations import accessible

router = APIRouter(prefix="/v1", tags=["chat"])

PIPELINE = "supportbot"
_STARTED = int(time.time())


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


def _chunk(cid: str, model: str, delta: dict, finish: str | None = None, **extra) -> str:
    body = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def _error_event(exc: Exception) -> str:
    return f"data: {json.dumps({'error': {'type': 'generation_failed', 'message': str(exc)}})}\n\n"


@router.post("/chat/completions", responses={200: {"description": "a chat.completion, or with stream=true "
                                                   "chat.completion.chunk events", "content": {"text/event-stream": {}}}})
def chat_completions(body: ChatCompletionRequest, runtime: RuntimeDep, settings: SettingsDep, caller: CallerDep):
    for i, m in enumerate(body.messages):
        if len(m.text()) > settings.max_text_chars:
            raise PayloadTooLargeError(f"messages[{i}] has {len(m.text())} characters; the limit is "
                                       f"{settings.max_text_chars}")
    params = GenerationParams(
        max_tokens=body.max_completion_tokens or body.max_tokens or settings.chat_max_tokens,
        temperature=body.temperature or 0.0, top_p=body.top_p or 1.0, stop=list(body.stop or []),
        timeout_s=settings.chat_timeout_s)
    model = body.model or PIPELINE
    cid = "chatcmpl-" + uuid.uuid4().hex
    if model == PIPELINE:
        return _pipeline(body, runtime, params, cid, caller)
    generator = runtime.generator
    if generator is not None and model == generator.name and settings.plain_model_endpoint == "admin":
        if not caller.is_admin:
            raise AuthError(403, f"the plain model {model!r} needs an admin key; customer services use "
                                 f"model={PIPELINE!r}")
        return _plain(body, generator, params, cid)
    raise NotFoundError(f"model {model!r} is not served here; use {PIPELINE!r} (GET /v1/models)")


def _pipeline(body: ChatCompletionRequest, runtime, params: GenerationParams, cid: str, caller: Caller):
    last = body.messages[-1]
    if last.role != "user" or not last.text().strip():
        raise InputError("the last message must be the customer's (role 'user') and not empty")
    dialogue = runtime.dialogue
    conversation_id = body.conversation_id
    if conversation_id is None:
        earlier = [(m.role, m.text()) for m in body.messages[:-1] if m.role in ("user", "assistant") and m.text()]
        conversation_id = dialogue.create_conversation(channel="api", customer_ref=body.user, history=earlier,
                                                       owner=caller.owner)
    else:
        with runtime.sessions() as session:
            accessible(session, caller, conversation_id)
    events = dialogue.stream_turn(conversation_id, last.text(), params)
    first = next(events)  # errors (unknown conversation, bad text) surface here, before any 200
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

    prompt_tokens = sum(_tokens(generator, m.text()) for m in body.messages)
    if not body.stream:
        pieces, result = [], None
        for event in _chain(first, events):
            if isinstance(event, TurnResult):
                result = event
            else:
                pieces.append(event)
        text = result.reply.text if result.reply else held_text(result)
        completion = _tokens(generator, text)
        return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": PIPELINE,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                          "total_tokens": prompt_tokens + completion},
                **extras(result)}

    def sse() -> Iterator[str]:
        yield _chunk(cid, PIPELINE, {"role": "assistant", "content": ""}, conversation_id=conversation_id)
        try:
            for event in _chain(first, events):
                if isinstance(event, TurnResult):
                    if event.reply is None:
                        yield _chunk(cid, PIPELINE, {"content": held_text(event)})
                    yield _chunk(cid, PIPELINE, {}, "stop", **extras(event))
                else:
                    yield _chunk(cid, PIPELINE, {"content": event})
        except Exception as exc:  # noqa: BLE001 - the status line is sent: report in the stream
            yield _error_event(exc)
        yield "data: [DONE]\n\n"

    return StreamingResponse(sse(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _canned(body: ChatCompletionRequest, model: str, cid: str, text: str):
    """A fixed reply in the endpoint's own shapes (JSON or SSE)."""
    if not body.stream:
        return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}

    def sse() -> Iterator[str]:
        yield _chunk(cid, model, {"role": "assistant", "content": ""})
        yield _chunk(cid, model, {"content": text})
        yield _chunk(cid, model, {}, "stop")
        yield "data: [DONE]\n\n"

    return StreamingResponse(sse(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _chain(first, rest):
    yield first
    yield from rest


def _plain(body: ChatCompletionRequest, generator, params: GenerationParams, cid: str):
    roles = {"developer": "system", "tool": "user"}
    messages = [{"role": roles.get(m.role, m.role), "content": normalise_text(m.text())} for m in body.messages]
    asked = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    if policy.refusal(asked):  # harmful requests get the same refusal as customers, without the model
        language = "zh" if detect_language(asked) in ("zh", "ja") else "en"
        return _canned(body, generator.name, cid, prompting.text("refuse", language))
    if messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": prompting.SYSTEM_PROMPT})
    messages = prompting.fit_context(messages, generator.count_tokens, generator.context_tokens - params.max_tokens)
    prompt_tokens = generator.count_tokens(messages)
    pieces = generator.stream(messages, params)
    if not body.stream:
        text = "".join(pieces)  # a GenerationError becomes a 503
        completion = _tokens(generator, text)
        return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": generator.name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "length" if completion >= params.max_tokens else "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                          "total_tokens": prompt_tokens + completion}}

    def sse() -> Iterator[str]:
        yield _chunk(cid, generator.name, {"role": "assistant", "content": ""})
        try:
            for piece in pieces:
                yield _chunk(cid, generator.name, {"content": piece})
            yield _chunk(cid, generator.name, {}, "stop")
        except Exception as exc:  # noqa: BLE001
            yield _error_event(exc)
        yield "data: [DONE]\n\n"

    return StreamingResponse(sse(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
