"""Who is calling, and what they may touch.

Every request is made by a `Caller`: an API key (its scope), a UI user (their role), the
open customer chat, or the operator (CLI, scripts: in-process code is trusted). Scopes:

    customer  services facing customers: create conversations, send turns, read and rate
              *their own* conversations; their corrections wait for an agent's review
    agent     the support team: every conversation, agent replies, release, review
    admin     everything: erasure, model versions, the plain model endpoint

`owner` is what a conversation records about its creator, so a customer-scope caller
only ever sees its own. Handlers check, services trust what they are given.
"""

from __future__ import annotations

from dataclasses import dataclass

SCOPES = ("customer", "agent", "admin")
LEGACY_SCOPES = {"normal": "agent"}  # keys files written before the scopes existed


@dataclass(frozen=True)
class Caller:
    scope: str  # one of SCOPES
    owner: str  # what conversations and feedback record: "key:<id>", "ui:<name>", "chat", ...
    name: str  # for people: the key's or user's name (agent replies, who confirmed a row)

    @property
    def is_staff(self) -> bool:
        """Agents and admins: their corrections teach the models as they are."""
        return self.scope in ("agent", "admin")

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"

    def may_access(self, conversation_owner: str | None) -> bool:
        """Staff see every conversation; a customer-scope caller only those it created."""
        return self.is_staff or (conversation_owner is not None and conversation_owner == self.owner)


OPERATOR = Caller("admin", "operator", "operator")  # the CLI and scripts, in-process
OPEN = Caller("admin", "open", "open")  # no API keys yet: the server listens on loopback only
CHAT = Caller("customer", "chat", "customer")  # the open /chat page; conversations carry a token


def scope_of(value: str) -> str:
    scope = LEGACY_SCOPES.get(value, value)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}; got {value!r}")
    return scope
