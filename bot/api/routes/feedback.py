"""/v1/feedback: 👍/👎, comments and corrections on the bot's work (training data)."""

from __future__ import annotations

from fastapi import APIRouter

from bot.api.auth import ScopeDep
from bot.api.deps import RuntimeDep
from bot.api.schemas import FeedbackCreate, FeedbackId

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])


@router.post("", response_model=FeedbackId, status_code=201,
             responses={404: {"description": "unknown message"}, 409: {"description": "this feedback was recorded"}})
def create(body: FeedbackCreate, runtime: RuntimeDep, _scope: ScopeDep):
    return {"id": runtime.feedback.record(**body.model_dump())}
