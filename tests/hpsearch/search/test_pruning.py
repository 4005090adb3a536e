"""Trials report their best value at checkpoints, and a study's pruner may stop them there:
recorded as PRUNED with the value they last reported, for one trial at a time and batched
(where the pruned slot is refilled at once); the export leaves them out unless asked."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from hpsearch.results.rows import Selection, best_rows
from hpsearch.studies.records import create_study, find_records
from hpsearch.worker.loop import Worker
from objectives.tasks.calibration.study import CalibrationStudy
from storage import HeartbeatPolicy, open_storage

POLICY = HeartbeatPolicy(interval=1, grace=5)


def _run(url: str, batch: int, pruner: str, trials: int = 30) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(url, create=True, heartbeat=POLICY)
    settings = CalibrationStudy(label="p", dims=2, seconds=0.25)  # 50 steps: 5 checkpoints
    create_study(storage, settings, trials=trials, sampler="random", pruner=pruner, seed=0)
    report = Worker(storage, find_records(storage, None), device="cpu", seed=3).run(batch=batch)
    trials_ = optuna.load_study(study_name=settings.name, storage=storage).get_trials()
    assert report.complete + report.pruned == trials == len(trials_)
    assert report.pruned == sum(t.state == TrialState.PRUNED for t in trials_)
    return trials_


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 4])
def test_median_pruner_stops_trials_below_the_median(sqlite_url, batch):
    trials = _run(sqlite_url, batch, "median")
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert pruned, "nothing was pruned"
    for t in trials:
        # Every trial reported at checkpoints (multiples of 10 steps; a batch reports the
        # latest one passed when it looks, every 20 steps), its value so far.
        assert t.intermediate_values
        assert all(step % 10 == 0 and v == t.value for step, v in t.intermediate_values.items())
    for t in pruned:
        last = t.intermediate_values[max(t.intermediate_values)]
        assert t.value == last  # the value it last reported
        assert t.user_attrs["pruned"] is True
        assert max(t.intermediate_values) < 50  # stopped before its end
        # Pruned only once 10 trials had completed, and where its value was below the median,
        # at that step, of the completed trials that reported there (the pruner's history).
        before = [o for o in complete if o.datetime_complete < t.datetime_complete]
        assert len(before) >= 10
        step = max(t.intermediate_values)
        earlier = [o.intermediate_values[step] for o in before if step in o.intermediate_values]
        assert earlier and t.value < _median(earlier)
    assert all(t.user_attrs["pruned"] is False for t in complete)
    # The best trials are never pruned: the best value overall is a complete trial's.
    assert max(t.value for t in complete) >= max(t.value for t in pruned)


@pytest.mark.parametrize(("batch", "steps"), [(1, [10, 20, 30, 40, 50]), (4, [20, 40])])
def test_without_a_pruner_every_trial_runs_to_its_end(sqlite_url, batch, steps):
    """Reported at every checkpoint one at a time; batched, at those a look (every 20 steps)
    finds passed."""
    trials = _run(sqlite_url, batch, "none", trials=8)
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert all(sorted(t.intermediate_values) == steps for t in trials)


def test_a_pruned_batched_slot_is_refilled(sqlite_url, monkeypatch):
    """With batch 4, a pruned trial's slot takes a new trial before the others end."""
    from objectives.tasks.calibration.study import CalibrationBatch

    peaks = []
    original = CalibrationBatch.run

    def watch(self, steps):
        peaks.append(self.occupied)
        return original(self, steps)

    monkeypatch.setattr(CalibrationBatch, "run", watch)
    trials = _run(sqlite_url, 4, "median", trials=30)
    assert any(t.state == TrialState.PRUNED for t in trials)
    # Slots stay full while trials are being pruned (they are refilled at once).
    assert peaks.count(4) > len(peaks) // 2


def test_export_leaves_pruned_trials_out_unless_asked(sqlite_url):
    from hpsearch.studies.records import create_studies
    from hpsearch.studies.schema import Experiment

    storage = open_storage(sqlite_url, create=True)
    create_studies(
        storage,
        Experiment(archs=("rnn",), budgets=(300,), depths=(1,), trials=2, seed=0),
    )
    study = optuna.load_study(study_name="capacity-rnn-p300", storage=storage)
    attrs = {"depth": 1, "num_params": 300, "hidden_size": 10, "bits_per_param": 0.0}
    config = {"b": 100, "learning_rate": 0.01, "init_scale": 1.0}
    for state, value in ((TrialState.COMPLETE, 50.0), (TrialState.PRUNED, 80.0)):
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=value,
                user_attrs={**attrs, "bits_per_param": value / 300, "config": config},
                intermediate_values={500: value},
            )
        )
    (row,) = best_rows(storage)
    assert row.best_bits == 50.0 and row.trials_complete == 1
    (row,) = best_rows(storage, Selection(pruned=True))
    assert row.best_bits == 80.0 and row.trials_complete == 2
