"""Each agent's console preferences: language, sounds, desktop notifications, and which
events notify them. Stored per agent (``agents.preferences``, JSON, migration 14);
the console reads them from ``/console/me`` at start and saves them with
``PUT /console/preferences``.

A PUT replaces the whole object: a field left out takes its default. ``language``
``null`` follows the browser's language.
"""

from __future__ import annotations

import logging
from typing import Literal

import msgspec

from chatserver.store.base import Store

log = logging.getLogger(__name__)


class Notify(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Which events notify the agent (with a sound and, if allowed, on the desktop)."""

    # A new conversation arrives in the inbox.
    new_conversation: bool = True
    # A visitor writes in a conversation assigned to this agent.
    new_message_mine: bool = True
    # A conversation is assigned to this agent (by someone else, or by routing).
    assigned_to_me: bool = True


class Preferences(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # The console's language; None follows the browser.
    language: Literal["en", "nb", "nn"] | None = None
    sound: bool = True
    # On: the browser's own permission (asked for by "Enable notifications") is the gate.
    desktop: bool = True
    notify: Notify = msgspec.field(default_factory=Notify)


DEFAULTS = Preferences()


def preferences_json(preferences: Preferences) -> dict[str, object]:
    return msgspec.to_builtins(preferences)  # type: ignore[no-any-return]


async def load(store: Store, agent_id: str) -> Preferences:
    """The agent's preferences; the defaults when none are stored. Stored fields this
    build does not know (from a newer one) are left out, and a value that no longer
    fits gives the defaults."""
    raw = await store.agent_preferences(agent_id)
    if raw is None:
        return DEFAULTS
    try:
        stored = msgspec.json.decode(raw)
        if not isinstance(stored, dict):
            raise msgspec.ValidationError("not an object")
        known = {k: v for k, v in stored.items() if k in Preferences.__struct_fields__}
        if isinstance(known.get("notify"), dict):
            known["notify"] = {
                k: v for k, v in known["notify"].items() if k in Notify.__struct_fields__
            }
        return msgspec.convert(known, Preferences)
    except msgspec.DecodeError:  # ValidationError is one
        log.warning("agent %s: stored preferences do not parse; using the defaults", agent_id)
        return DEFAULTS


async def save(store: Store, agent_id: str, preferences: Preferences) -> Preferences:
    await store.save_agent_preferences(agent_id, msgspec.json.encode(preferences).decode())
    return preferences
