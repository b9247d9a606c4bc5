"""How far a bulk publish has got (a replay, retained messages imported or deleted): plain data the runtime
updates as it publishes and the screen reads on its timer."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PublishProgress"]


@dataclass(slots=True)
class PublishProgress:
    """``total`` messages to publish one after the other."""

    total: int
    #: Published so far, accepted or refused by the broker.
    done: int = 0
    #: Of those, accepted.
    accepted: int = 0
    #: Whether the publishing ended (finished, stopped or failed).
    ended: bool = False

    @property
    def refused(self) -> int:
        return self.done - self.accepted
