"""The progress bar: its counts, and one bar for `worker --processes N` fed by the children."""

from __future__ import annotations

import io
import os

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from hpsearch.studies.records import StudyRecord, create_study, find_records
from hpsearch.worker.processes import run_processes
from hpsearch.worker.progress import FEED_ENV, ProgressBar
from objectives.tasks.calibration.study import CalibrationStudy
from storage import open_storage


class Terminal(io.StringIO):
    """What a bar writes to a terminal, kept."""

    def isatty(self) -> bool:
        return True


def _capacity_study(storage: optuna.storages.RDBStorage, name: str, bits: list[float]) -> None:
    """Complete trials of `bits` over 100 parameters each, and one pruned trial."""
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    dist: dict[str, optuna.distributions.BaseDistribution] = {
        "x": optuna.distributions.FloatDistribution(0, 1)
    }
    for value in bits:
        study.add_trial(
            create_trial(
                value=value, params={"x": 0.5}, distributions=dist, user_attrs={"num_params": 100}
            )
        )
    study.add_trial(
        create_trial(state=TrialState.PRUNED, value=1e6, params={"x": 0.5}, distributions=dist)
    )


def _records(names: list[str], target: int) -> list[StudyRecord]:
    return [StudyRecord(name, "capacity", {"target_trials": target}) for name in names]


def test_the_bar_counts_every_workers_trials_and_the_best_per_param(sqlite_url, monkeypatch):
    monkeypatch.delenv(FEED_ENV, raising=False)
    storage = open_storage(sqlite_url, create=True)
    _capacity_study(storage, "a", [300.0, 420.0])
    _capacity_study(storage, "b", [150.0])
    terminal = Terminal()
    with ProgressBar(storage, _records(["a", "b"], 10), file=terminal) as bar:
        assert bar.enabled and bar.bar is not None  # a terminal, and no parent draws it
        assert bar.bar.n == 3 + 2 and bar.bar.total == 20  # complete and pruned, both studies
        # The best of the complete trials (the pruned one's value is not a result).
        assert "best 4.200 bits/param" in bar.bar.postfix
        bar.follow([b"\n", b"\n", b"\n"])  # three trials ended in children
        assert bar.mine == 3
        bar.write("a child's log line\n")
    shown = terminal.getvalue()
    assert "a child's log line" in shown and "trials/h here" in shown and "2 studies" in shown
    quiet = ProgressBar(storage, _records(["a"], 10), file=io.StringIO())
    with quiet:
        quiet.update()
    assert quiet.bar is None and quiet.mine == 1  # not a terminal: no bar


def test_a_child_feeds_its_parent_and_draws_nothing(sqlite_url, monkeypatch):
    storage = open_storage(sqlite_url, create=True)
    _capacity_study(storage, "a", [300.0])
    read, write = os.pipe()
    try:
        monkeypatch.setenv(FEED_ENV, str(write))
        with ProgressBar(storage, _records(["a"], 10), file=Terminal()) as child:
            child.update()
            child.update()
            assert child.bar is None  # even on a terminal: the parent draws
        assert os.read(read, 100) == b"\n\n"
    finally:
        os.close(read)
        os.close(write)


@pytest.mark.slow  # starts two worker processes
@pytest.mark.timeout(240)
def test_processes_draw_one_bar_of_the_whole(sqlite_url, monkeypatch):
    """Two child workers on a terminal: the parent's one bar counts both children's trials,
    their log lines come out above it, and no child draws a bar of its own."""
    monkeypatch.delenv(FEED_ENV, raising=False)
    storage = open_storage(sqlite_url, create=True)
    # Trials of half a second, so that both children are up before the target is reached.
    study = CalibrationStudy(label="c", seconds=0.5)
    create_study(storage, study, trials=12, sampler="random", seed=0)
    records = find_records(storage, None)
    written: list[str] = []

    class Kept(ProgressBar):
        def write(self, line: str) -> None:
            written.append(line)
            super().write(line)

    terminal = Terminal()
    argv = ["worker", "--storage", sqlite_url, "--all", "--device", "cpu", "-v"]
    with Kept(storage, records, file=terminal) as bar:
        code = run_processes(argv, 2, pin_gpus=False, gpus=0, seed=0, bar=bar)
        assert code == 0
        assert bar.mine == 12  # every trial, whichever child ran it
        assert bar.bar is not None and bar.bar.n == 12
    trials = optuna.load_study(study_name="calibration-c", storage=storage).get_trials()
    workers = {t.user_attrs["worker"] for t in trials if t.state == TrialState.COMPLETE}
    assert len(workers) == 2, workers  # both children ran trials
    assert any("calibration-c #" in line for line in written)  # the children's log
    assert not any("trials/h" in line or "\r" in line for line in written)  # no child bar
