"""Each study's trials by state and its best bits so far."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from hpsearch.studies import list_records


@dataclass(frozen=True)
class StudyStatus:
    study: str
    target: int
    complete: int
    running: int
    waiting: int
    failed: int
    pruned: int
    best_bits: float | None
    best_bits_per_param: float | None


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
        out.append(
            StudyStatus(
                study=record.name,
                target=record.target,
                complete=counts[TrialState.COMPLETE],
                running=counts[TrialState.RUNNING],
                waiting=counts[TrialState.WAITING],
                failed=counts[TrialState.FAIL],
                pruned=counts[TrialState.PRUNED],
                best_bits=None if best is None else best.value,
                best_bits_per_param=(
                    None if best is None else best.user_attrs.get("bits_per_param")
                ),
            )
        )
    return out


def render_status(rows: list[StudyStatus]) -> str:
    if not rows:
        return "no hpsearch studies in this storage\n"
    header = f"{'study':<28} {'done':>9} {'run':>4} {'wait':>4} {'fail':>4} {'best bits':>10} "
    header += f"{'bits/param':>10}"
    lines = [header]
    for r in rows:
        best = "-" if r.best_bits is None else f"{r.best_bits:.1f}"
        bpp = "-" if r.best_bits_per_param is None else f"{r.best_bits_per_param:.3f}"
        done = f"{r.complete}/{r.target}"
        lines.append(
            f"{r.study:<28} {done:>9} {r.running:>4} {r.waiting:>4} {r.failed:>4} "
            f"{best:>10} {bpp:>10}"
        )
    return "\n".join(lines) + "\n"
