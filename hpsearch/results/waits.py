"""What workers waited for, as each study stores it: one study system attr per worker,
`WAITS_PREFIX` + its name, written by the worker (`hpsearch.worker.loop`) at most every
WAITS_SECONDS and when it ends, read back summed over workers by `hpsearch status`.

Two figures, both about the gap between training and proposing:

- empty slots: the part of the worker's wall time its executor had empty slots while its
  studies had room (trials could still be added): time lost to claiming, to waiting for
  proposals, and to telling results before the next claim. A worker of several studies
  stores its own figure in each of them.
- claim wait: the seconds the worker's claims of this study waited for proposals (a fit of
  their own or another worker's; `hpsearch.search.proposals.ClaimWaits`), in all and per
  claim that got trials.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

# The study system attr of one worker's waits: WAITS_PREFIX + worker name.
WAITS_PREFIX = "hpsearch:waits:"
# Least time between two writes of a worker's waits (each is one write per study).
WAITS_SECONDS = 30.0


@dataclass(frozen=True)
class Waits:
    """One worker's waits in one study (workers == 1), or the sum over a study's workers."""

    wall_seconds: float
    empty_seconds: float
    claims: int
    waited_claims: int
    wait_seconds: float
    workers: int = 1

    @property
    def empty_fraction(self) -> float:
        """Empty-slot time over wall time (0 before any time has passed)."""
        return self.empty_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def mean_wait(self) -> float:
        """Seconds a claim waited for proposals, per claim that got trials."""
        return self.wait_seconds / self.claims if self.claims else 0.0

    def to_attrs(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Waits:
        return cls(
            wall_seconds=float(attrs["wall_seconds"]),
            empty_seconds=float(attrs["empty_seconds"]),
            claims=int(attrs["claims"]),
            waited_claims=int(attrs["waited_claims"]),
            wait_seconds=float(attrs["wait_seconds"]),
            workers=int(attrs.get("workers", 1)),
        )

    def describe(self) -> str:
        """One line for a worker's log."""
        return (
            f"executor slots empty {100 * self.empty_fraction:.1f}% of "
            f"{self.wall_seconds:.1f}s while its studies had room; "
            f"{self.waited_claims} of {self.claims} claims waited for proposals, "
            f"{self.wait_seconds:.2f}s in all ({self.mean_wait:.3f}s a claim)"
        )


def study_waits(system_attrs: Mapping[str, Any]) -> Waits | None:
    """The waits of every worker that stored them in a study (its system attrs), summed;
    None when none has. Records that cannot be read (written by another version) are
    skipped."""
    found = []
    for key, value in system_attrs.items():
        if key.startswith(WAITS_PREFIX) and isinstance(value, Mapping):
            try:
                found.append(Waits.from_attrs(value))
            except (KeyError, TypeError, ValueError):
                continue
    if not found:
        return None
    return Waits(
        wall_seconds=sum(w.wall_seconds for w in found),
        empty_seconds=sum(w.empty_seconds for w in found),
        claims=sum(w.claims for w in found),
        waited_claims=sum(w.waited_claims for w in found),
        wait_seconds=sum(w.wait_seconds for w in found),
        workers=sum(w.workers for w in found),
    )
