"""/v1/model-versions: the versions of each task's model, and promoting or rolling back
(activating an earlier version) for admins."""

from __future__ import annotations

from fastapi import APIRouter

from bot import versions
from bot.api.auth import AdminDep, AgentDep
from bot.api.deps import SessionDep, SettingsDep
from bot.api.schemas import ModelVersionPublic, TaskVersionsPublic

router = APIRouter(prefix="/v1/model-versions", tags=["model-versions"])


@router.get("", response_model=dict[str, TaskVersionsPublic])
def list_(session: SessionDep, settings: SettingsDep, _agent: AgentDep):
    return versions.versions_public(session, settings)


@router.post("/{version_id}/activate", response_model=ModelVersionPublic)
def activate(version_id: str, session: SessionDep, settings: SettingsDep, _admin: AdminDep):
    version = versions.activate(session, settings, version_id)
    # Committed before the 200 goes out: SessionDep's own commit runs after the response.
    session.commit()
    return versions.version_public(version)
