"""Each study's trials by state, its best value so far (shown as its task's description
says: bits, the fraction reconstructed, ...), and trials completed in the last hour (by any
worker), and what its workers waited for (`hpsearch.results.waits`: the part of their time
their executors had empty slots while the study had room, and the seconds their claims waited
for proposals). One row per study, rendered as text or as strict JSON with the same numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import optuna
from optuna.trial import TrialState

from hpsearch.results.rows import best_trial
from hpsearch.results.tables import to_json
from hpsearch.results.waits import study_waits
from hpsearch.studies.records import list_records
from objectives.tasks.description import describe_stored

# The formats of `hpsearch status`.
STATUS_FORMATS: tuple[str, ...] = ("text", "json")


@dataclass(frozen=True)
class StudyStatus:
    study: str
    target: int
    complete: int
    running: int
    waiting: int
    failed: int
    pruned: int
    best_value: float | None
    best_bits_per_param: float | None
    trials_last_hour: int
    task: str
    # What the study's workers waited for (None: no worker has stored it).
    empty_slot_fraction: float | None = None
    claim_wait_seconds: float | None = None
    claim_wait_mean: float | None = None
    claims: int = 0

    @property
    def best_bits(self) -> float | None:
        """The best value of a study whose value is bits (a per-parameter task; None for
        other tasks)."""
        return self.best_value if describe_stored(self.task).per_param else None

    @property
    def done(self) -> int:
        """Trials that took their place towards the target: a pruned trial does too."""
        return self.complete + self.pruned

    def waits_text(self) -> tuple[str, str]:
        """Empty-slot percent, and the claims' wait (in all, and per claim), for the text."""
        if self.empty_slot_fraction is None or self.claim_wait_seconds is None:
            return "-", "-"
        mean = self.claim_wait_mean or 0.0
        return (
            f"{100 * self.empty_slot_fraction:.1f}%",
            f"{self.claim_wait_seconds:.1f}s/{mean:.2f}s",
        )

    def best_text(self) -> str:
        if self.best_value is None:
            return "-"
        return describe_stored(self.task).format_value(self.best_value)


def study_status(storage: optuna.storages.BaseStorage) -> list[StudyStatus]:
    out = []
    for record in list_records(storage):
        study_id = storage.get_study_id_from_name(record.name)
        trials = storage.get_all_trials(study_id, deepcopy=False)
        counts = {state: 0 for state in TrialState}
        for trial in trials:
            counts[trial.state] += 1
        complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        best = best_trial(complete) if complete else None
        hour_ago = datetime.now() - timedelta(hours=1)
        last_hour = sum(
            1
            for t in complete
            if t.datetime_complete is not None and t.datetime_complete > hour_ago
        )
        waits = study_waits(storage.get_study_system_attrs(study_id))
        out.append(
            StudyStatus(
                study=record.name,
                task=record.task,
                target=record.target,
                complete=counts[TrialState.COMPLETE],
                running=counts[TrialState.RUNNING],
                waiting=counts[TrialState.WAITING],
                failed=counts[TrialState.FAIL],
                pruned=counts[TrialState.PRUNED],
                best_value=None if best is None else best.value,
                best_bits_per_param=(
                    None if best is None else best.user_attrs.get("bits_per_param")
                ),
                trials_last_hour=last_hour,
                empty_slot_fraction=None if waits is None else waits.empty_fraction,
                claim_wait_seconds=None if waits is None else waits.wait_seconds,
                claim_wait_mean=None if waits is None else waits.mean_wait,
                claims=0 if waits is None else waits.claims,
            )
        )
    return out


def render_status(rows: list[StudyStatus]) -> str:
    if not rows:
        return "no hpsearch studies in this storage\n"
    width = max(28, *(len(r.study) for r in rows))
    header = f"{'study':<{width}} {'done':>9} {'run':>4} {'wait':>4} {'fail':>4} {'prune':>5} "
    header += f"{'best':>13} "
    header += f"{'bits/param':>10} {'trials/h':>8} {'empty':>6} {'claim wait':>13}"
    lines = [header]
    for r in rows:
        bpp = "-" if r.best_bits_per_param is None else f"{r.best_bits_per_param:.3f}"
        done = f"{r.done}/{r.target}"
        empty, wait = r.waits_text()
        lines.append(
            f"{r.study:<{width}} {done:>9} {r.running:>4} {r.waiting:>4} {r.failed:>4} "
            f"{r.pruned:>5} {r.best_text():>13} {bpp:>10} {r.trials_last_hour:>8} "
            f"{empty:>6} {wait:>13}"
        )
    return "\n".join(lines) + "\n"


def status_json(rows: list[StudyStatus]) -> str:
    """The rows as a JSON list, one object per study with the numbers of the text form
    (`done` as it counts there) and the task's metric; strict JSON (no NaN)."""
    out = [
        {
            **asdict(r),
            "done": r.done,
            "metric": describe_stored(r.task).metric,
            "best_text": r.best_text(),
        }
        for r in rows
    ]
    return to_json(out) + "\n"
