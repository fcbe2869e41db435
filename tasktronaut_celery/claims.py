"""Claims: what is done once per run, claimed in the run store before it is done.

A hook that must fire once per process, or a chord body that must be sent
once, is claimed first; of the workers that race for it, the one whose claim
wins does it. The run store keeps a claim as a short text (its ``marker``);
this module is the one place that writes and reads that text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

ClaimKind = Literal["started", "ended", "completed", "joined", "passed"]


@dataclass(frozen=True, slots=True)
class Claim:
    """Something done once per run, claimed in the run store before it is done.

    ``started``, ``ended`` and ``completed`` name a process by its path;
    ``joined`` names a chord (``kind:path`` of its body) whose body a
    dispatching worker sends; ``passed`` names a join by its path. The last
    two kinds record what a resumed run need not do again: a process whose
    ``on_completed`` returned, and a join that did its work.
    """

    kind: ClaimKind
    subject: str

    @classmethod
    def started(cls, process: str) -> Claim:
        """The claim of ``on_started`` of the process at ``process``."""
        return cls("started", process)

    @classmethod
    def ended(cls, process: str) -> Claim:
        """The claim of the end of the process at ``process``: one end hook fires for it."""
        return cls("ended", process)

    @classmethod
    def completed(cls, process: str) -> Claim:
        """The record that ``on_completed`` of the process at ``process`` returned."""
        return cls("completed", process)

    @classmethod
    def passed(cls, join: str) -> Claim:
        """The record that the join at ``join`` completed its processes and sent what follows."""
        return cls("passed", join)

    @classmethod
    def joined(cls, chord: str) -> Claim:
        """The claim of sending the body of ``chord`` once all its members arrived."""
        return cls("joined", chord)

    @property
    def marker(self) -> str:
        """The claim as the run store keeps it."""
        return f"{self.kind}:{self.subject}"

    @classmethod
    def parse(cls, marker: str) -> Claim | None:
        """The claim a stored ``marker`` is, or ``None`` if it is none."""
        kind, colon, subject = marker.partition(":")
        if not colon or kind not in get_args(ClaimKind):
            return None
        return cls(kind, subject)  # type: ignore[arg-type]
