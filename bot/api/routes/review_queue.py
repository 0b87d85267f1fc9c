"""/v1/review-queue: the customer turns whose labels would teach the models most, ranked
(bot.review_queue), and an agent's one-click confirm or correct of one of them, stored as
a confirmed feedback row. Agent and admin keys only; a customer key gets 403.
"""

from __future__ import annotations

from fastapi import APIRouter, Query

from bot.api.auth import AgentDep
from bot.api.deps import RuntimeDep
from bot.api.schemas import ReviewConfirm, ReviewCorrect, ReviewDecisionPublic, ReviewItemsPublic, ReviewTask
from bot.review_queue import DEFAULT_LIMIT, MAX_LIMIT, for_runtime

router = APIRouter(prefix="/v1/review-queue", tags=["review queue"])
DECISION_ERRORS = {404: {"description": "no such customer turn"},
                   409: {"description": "the turn's label for this task is confirmed already"}}


@router.get("", response_model=ReviewItemsPublic)
def list_queue(runtime: RuntimeDep, agent: AgentDep, limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
               task: ReviewTask | None = None, language: str | None = Query(None, min_length=1, max_length=16),
               cursor: str | None = Query(None, max_length=512)):
    return for_runtime(runtime).list(caller=agent, limit=limit, task=task, language=language, cursor=cursor)


@router.post("/{message_id}/confirm", response_model=ReviewDecisionPublic, status_code=201, responses=DECISION_ERRORS)
def confirm(message_id: str, body: ReviewConfirm, runtime: RuntimeDep, agent: AgentDep):
    return for_runtime(runtime).decide(message_id, task=body.task, caller=agent)


@router.post("/{message_id}/correct", response_model=ReviewDecisionPublic, status_code=201, responses=DECISION_ERRORS)
def correct(message_id: str, body: ReviewCorrect, runtime: RuntimeDep, agent: AgentDep):
    return for_runtime(runtime).decide(message_id, task=body.task, label=body.label, caller=agent)
