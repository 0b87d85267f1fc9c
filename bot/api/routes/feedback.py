"""/v1/feedback: 👍/👎, comments and corrections on the bot's work, and the agents' review.

Staff feedback (agent or admin keys) teaches the models as sent; a customer-scope key's
corrections wait for an agent (`GET /v1/feedback?review_status=pending`, then
`POST /v1/feedback/{id}/confirm` or `/reject`), and customers rate only messages of
their own conversations.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query

from bot.api.auth import AgentDep, CallerDep
from bot.api.deps import RuntimeDep
from bot.api.schemas import FeedbackCreate, FeedbackId, FeedbackReviewPublic, FeedbackReviewsPublic

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])


@router.post("", response_model=FeedbackId, status_code=201,
             responses={404: {"description": "unknown message"}, 409: {"description": "this feedback was recorded"}})
def create(body: FeedbackCreate, runtime: RuntimeDep, caller: CallerDep):
    return {"id": runtime.feedback.record(**body.model_dump(), caller=caller)}


@router.get("", response_model=FeedbackReviewsPublic)
def list_pending(runtime: RuntimeDep, _agent: AgentDep, review_status: Literal["pending"] = "pending",
                 limit: int = Query(50, ge=1, le=500)):
    data = runtime.feedback.pending(limit=limit)
    return {"data": data, "count": len(data)}


@router.post("/{feedback_id}/confirm", response_model=FeedbackReviewPublic)
def confirm(feedback_id: str, runtime: RuntimeDep, agent: AgentDep):
    return runtime.feedback.review(feedback_id, decision="confirm", caller=agent)


@router.post("/{feedback_id}/reject", response_model=FeedbackReviewPublic)
def reject(feedback_id: str, runtime: RuntimeDep, agent: AgentDep):
    return runtime.feedback.review(feedback_id, decision="reject", caller=agent)
