"""/v1/conversations: customer turns, agent replies, release, history, erase.

Customer-scope keys create conversations and see only their own (others answer 404, as
if they did not exist); agents see and handle all; erasure needs an admin key.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import AfterValidator, BeforeValidator

from bot.api.auth import AdminDep, AgentDep, CallerDep
from bot.api.deps import DialogueDep, RuntimeDep, SessionDep
from bot.callers import Caller
from bot.api.schemas import (AgentMessageCreate, ConversationCreate, ConversationId, ConversationPublic,
                             ConversationsPublic, MessageCreate, MessagePublic, TurnPublic)
from bot.dialogue import conversation_public
from core.errors import NotFoundError
from storage.erasure import erase_conversation
from storage.repositories import conversations as repo

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


def _iso_only(value):
    """pydantic also takes numbers (unix time) and bare dates; the API promises ISO 8601 date-times."""
    if not isinstance(value, datetime) and not re.match(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", str(value)):
        raise ValueError("give an ISO 8601 date-time, e.g. 2026-01-31T00:00:00Z")
    return value


def _in_utc(value: datetime) -> datetime:
    """The database compares in UTC: a time that has no UTC equivalent (year 1 with a
    positive offset, year 9999 with a negative one) is the caller's mistake, not a 500."""
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError("date-time out of range once converted to UTC") from None


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only), AfterValidator(_in_utc)]


def accessible(session, caller: Caller, conversation_id: str):
    """The conversation if this caller may see it; else 404 (not 403: ids are not probed)."""
    conversation = repo.get_conversation(session, conversation_id=conversation_id)
    if conversation is None or not caller.may_access(conversation.owner):
        raise NotFoundError(f"no conversation {conversation_id!r}")
    return conversation


@router.post("", response_model=ConversationId, status_code=201)
def create(dialogue: DialogueDep, caller: CallerDep, body: ConversationCreate | None = None):
    body = body or ConversationCreate()
    return {"id": dialogue.create_conversation(channel=body.channel, customer_ref=body.customer_ref,
                                               metadata=body.metadata, owner=caller.owner)}


@router.post("/{conversation_id}/messages", response_model=TurnPublic)
def customer_message(conversation_id: str, body: MessageCreate, dialogue: DialogueDep, session: SessionDep,
                     caller: CallerDep):
    accessible(session, caller, conversation_id)
    session.commit()  # end the lookup's transaction before the (long) turn
    return dialogue.turn(conversation_id, body.text).public()


# Only the keys the new message has (no "sentiment": null on an agent's message).
@router.post("/{conversation_id}/agent-messages", response_model=MessagePublic, response_model_exclude_unset=True,
             status_code=201)
def agent_message(conversation_id: str, body: AgentMessageCreate, dialogue: DialogueDep, _agent: AgentDep):
    return dialogue.agent_message(conversation_id, body.text, agent=body.agent)


@router.post("/{conversation_id}/release", response_model=ConversationPublic)
def release(conversation_id: str, dialogue: DialogueDep, _agent: AgentDep):
    return dialogue.release(conversation_id)


@router.get("/{conversation_id}", response_model=ConversationPublic)
def get(conversation_id: str, session: SessionDep, caller: CallerDep):
    return conversation_public(accessible(session, caller, conversation_id))


@router.get("", response_model=ConversationsPublic)
def list_(session: SessionDep, caller: CallerDep, status: str | None = Query(None, pattern="^(open|escalated|closed)$"),
          since: IsoDateTime | None = None, limit: int = Query(50, ge=1, le=repo.MAX_PAGE_SIZE),
          cursor: str | None = Query(None, max_length=200)):
    owner = None if caller.is_staff else caller.owner  # customers list their own
    page = repo.list_conversations(session, status=status, since=since, limit=limit, cursor=cursor, owner=owner)
    data = [conversation_public(c, with_messages=False) for c in page.items]
    return {"data": data, "count": len(data), "next_cursor": page.next_cursor}


@router.delete("/{conversation_id}", status_code=204)
def erase(conversation_id: str, session: SessionDep, runtime: RuntimeDep, _admin: AdminDep):
    # this host's export files now; other hosts' by their next apply_erasures
    if not erase_conversation(session, conversation_id=conversation_id, host=runtime.host_id):
        raise NotFoundError(f"no conversation {conversation_id!r}")
    session.commit()  # gone before the 204 goes out (SessionDep's own commit runs after the response)
    return Response(status_code=204)
