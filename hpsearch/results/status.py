"""Each study's trials by state, its best value so far (bits for capacity, the fraction
reconstructed for per-unit), and trials completed in the last hour (by any worker)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import optuna
from optuna.trial import TrialState

from hpsearch.studies.records import list_records
from objectives.tasks.capacity import study as capacity
from objectives.tasks.per_unit import study as per_unit

# How the best value of a study of each task is shown; other tasks show the bare number.
VALUE_FORMATS = {capacity.TASK: "{:.1f} bits", per_unit.TASK: "{:.3f} recon."}


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
    task: str = capacity.TASK

    @property
    def best_bits(self) -> float | None:
        """The best value of a capacity study (None for other tasks)."""
        return self.best_value if self.task == capacity.TASK else None

    def best_text(self) -> str:
        if self.best_value is None:
            return "-"
        return VALUE_FORMATS.get(self.task, "{:.4g}").format(self.best_value)


def study_status(storage: optuna.storages.BaseStorage) -> list[StudyStatus]:
    out = []
    for record in list_records(storage):
        study_id = storage.get_study_id_from_name(record.name)
        trials = storage.get_all_trials(study_id, deepcopy=False)
        counts = {state: 0 for state in TrialState}
        for trial in trials:
            counts[trial.state] += 1
        complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None
        hour_ago = datetime.now() - timedelta(hours=1)
        last_hour = sum(
            1
            for t in complete
            if t.datetime_complete is not None and t.datetime_complete > hour_ago
        )
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
            )
        )
    return out


def render_status(rows: list[StudyStatus]) -> str:
    if not rows:
        return "no hpsearch studies in this storage\n"
    width = max(28, *(len(r.study) for r in rows))
    header = f"{'study':<{width}} {'done':>9} {'run':>4} {'wait':>4} {'fail':>4} {'prune':>5} "
    header += f"{'best':>13} "
    header += f"{'bits/param':>10} {'trials/h':>8}"
    lines = [header]
    for r in rows:
        bpp = "-" if r.best_bits_per_param is None else f"{r.best_bits_per_param:.3f}"
        done = f"{r.complete + r.pruned}/{r.target}"  # a pruned trial takes its place too
        lines.append(
            f"{r.study:<{width}} {done:>9} {r.running:>4} {r.waiting:>4} {r.failed:>4} "
            f"{r.pruned:>5} {r.best_text():>13} {bpp:>10} {r.trials_last_hour:>8}"
        )
    return "\n".join(lines) + "\n"
