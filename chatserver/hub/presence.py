"""Which agents are here (this node): online, away, or gone; and who can answer visitors.

An agent is online while any of their sockets is open, unless they said they
are away. Bots (token-made agents) are tracked but never count as someone
who can answer a visitor. ``chatserver.shared.presence`` merges every node's
view into the cluster's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Here:
    name: str
    human: bool
    sockets: int = 0
    away: bool = False
    # When the agent last said away or back (µs; 0: never): the latest word wins
    # across nodes.
    since: int = 0


class Presence:
    def __init__(self) -> None:
        self._here: dict[str, Here] = {}

    def status(self, agent_id: str) -> str:
        here = self._here.get(agent_id)
        if here is None:
            return "offline"
        return "away" if here.away else "online"

    def join(self, agent_id: str, name: str, *, human: bool) -> None:
        here = self._here.get(agent_id)
        if here is None:
            here = self._here[agent_id] = Here(name=name, human=human)
        here.sockets += 1

    def leave(self, agent_id: str) -> None:
        here = self._here.get(agent_id)
        if here is None:
            return
        here.sockets -= 1
        if here.sockets <= 0:
            del self._here[agent_id]

    def set_away(self, agent_id: str, away: bool, since: int = 0) -> None:
        here = self._here.get(agent_id)
        if here is not None:
            here.away = away
            here.since = since

    def get(self, agent_id: str) -> Here | None:
        return self._here.get(agent_id)

    def items(self) -> list[tuple[str, Here]]:
        return list(self._here.items())

    def everyone(self) -> list[tuple[str, str, str]]:
        """(id, name, status) of every agent here, by id."""
        return [
            (aid, here.name, "away" if here.away else "online")
            for aid, here in sorted(self._here.items())
        ]

    def agent_ids(self) -> list[str]:
        return sorted(self._here)

    def answering(self) -> list[str]:
        """Human agents here and not away, in a stable order (for round-robin)."""
        return sorted(aid for aid, here in self._here.items() if here.human and not here.away)

    @property
    def anyone_answering(self) -> bool:
        return any(here.human and not here.away for here in self._here.values())
