"""The worker with --batch: K trials in training at once, told as they end, slots refilled,
every held trial beating, interrupted trials queued again."""

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from hpsearch.errors import HpsearchError
from hpsearch.studies.records import create_studies, create_study, find_records
from hpsearch.studies.schema import Experiment
from hpsearch.worker.loop import Worker
from objectives.tasks.calibration.study import CalibrationStudy
from storage import HeartbeatPolicy, open_storage
from tests.testing import TRIAL_ATTRS, capacity_config, hpsearch

POLICY = HeartbeatPolicy(interval=1, grace=3)


def _storage(url, trials=7, depths=(1, 2), max_steps="40", b="16:300"):
    storage = open_storage(url, create=True, heartbeat=POLICY)
    create_studies(
        storage,
        Experiment(
            archs=("rnn",),
            budgets=(300,),
            depths=depths,
            trials=trials,
            seed=3,
            space={"max_steps": max_steps, "b": b},
        ),
    )
    return storage


def test_batched_worker_reaches_target_with_full_records(sqlite_url):
    storage = _storage(sqlite_url)
    records = find_records(storage, None)
    report = Worker(storage, records, device="cpu", heartbeat=POLICY).run(batch=3)
    assert report.complete == 7 and report.failed == 0
    trials = optuna.load_study(study_name="capacity-rnn-p300", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 7
    for t in trials:
        attrs = t.user_attrs
        assert t.value == attrs["bits"]
        assert attrs["config"]["b"] == t.params["b"] == attrs["b"]  # the config is stored
        for key in TRIAL_ATTRS:
            assert key in attrs
        assert attrs["depth"] == t.params["depth"]


def test_batched_results_equal_unbatched_for_the_same_trials(sqlite_url, tmp_path):
    """The same study seed and sampler seed give the same trials; batched or not, the same
    bits (the trials here stop within a few steps, before rounding can matter)."""
    values = []
    for batch, name in ((1, "a"), (4, "b")):
        url = f"sqlite:///{tmp_path / name}.db"
        storage = _storage(url, trials=6, depths=(1,))
        records = find_records(storage, None)
        Worker(storage, records, device="cpu", seed=11, heartbeat=POLICY).run(batch=batch)
        trials = optuna.load_study(study_name="capacity-rnn-p300", storage=storage).get_trials()
        values.append({t.number: (t.params["b"], t.user_attrs["errors"]) for t in trials})
    assert values[0].keys() == values[1].keys()
    # Random start-up trials: identical parameters; errors within 1% of b.
    for number, (b, errors) in values[0].items():
        b2, errors2 = values[1][number]
        assert b2 == b
        assert abs(errors2 - errors) <= max(1, 0.01 * b)


def test_batches_grow_and_are_compacted(sqlite_url, monkeypatch):
    """A batch starts with one slot (two, when a lone trial joins it) and doubles when full;
    near the target no new trial refills it, and the worker moves the trials left into
    smaller batches instead of computing empty slots."""
    from objectives.training.batched import BatchedTrainer

    # One group: depth 1, every b in (128, 256].
    storage = _storage(sqlite_url, trials=8, depths=(1,), max_steps="5:200", b="129:256")
    sizes = []
    original = BatchedTrainer.resize

    def spy(self, capacity):
        sizes.append((self.occupied, self.capacity, capacity))
        original(self, capacity)

    monkeypatch.setattr(BatchedTrainer, "resize", spy)
    records = find_records(storage, None)
    report = Worker(storage, records, device="cpu", seed=0, heartbeat=POLICY).run(batch=8)
    assert report.complete == 8
    # The first 8 trials: one alone (Alone), then it and the next in a batch of 2 -> 4 -> 8.
    assert [s[2] for s in sizes[:2]] == [4, 8]
    grown = [s for s in sizes if s[2] > s[1]]
    shrunk = [s for s in sizes if s[2] < s[1]]
    assert shrunk, "no batch was ever compacted"
    assert grown, "no batch ever grew"
    for occupied, before, after in grown:  # only a full batch grows, by doubling, up to K
        assert occupied == before and after == min(8, 2 * before)
    for occupied, before, after in shrunk:
        assert occupied <= before // 2 and occupied <= after
        assert after & (after - 1) == 0  # a power of two


def test_interrupted_batch_queues_every_held_trial_again(sqlite_url, monkeypatch):
    storage = _storage(sqlite_url, trials=5)
    records = find_records(storage, None)
    calls = []

    from hpsearch.worker.executors import Alone
    from objectives.training.batched import BatchedTrainer

    # A group's first trial trains alone (Alone), the others in its batch.
    originals = {BatchedTrainer: BatchedTrainer.run, Alone: Alone.run}

    beating = []

    def interrupt_later(self, steps):
        calls.append(steps)
        if len(calls) > 2:
            # Every trial the worker holds has a heartbeat row (the worker beats for all).
            with storage.engine.connect() as conn:
                beating.append(
                    conn.execute(
                        sqlalchemy.text(
                            "SELECT count(*) FROM trials t JOIN trial_heartbeats h "
                            "ON h.trial_id = t.trial_id WHERE t.state = 'RUNNING'"
                        )
                    ).scalar()
                )
            raise KeyboardInterrupt
        return originals[type(self)](self, 1)

    for trainer in originals:
        monkeypatch.setattr(trainer, "run", interrupt_later)
    with pytest.raises(KeyboardInterrupt):
        Worker(storage, records, device="cpu", heartbeat=POLICY).run(batch=3)
    study = optuna.load_study(study_name="capacity-rnn-p300", storage=storage)
    failed = study.get_trials(states=(TrialState.FAIL,))
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert beating == [3]
    assert len(failed) == 3 and len(waiting) == 3
    assert sorted(t.params["b"] for t in failed) == sorted(t.params["b"] for t in waiting)
    assert not study.get_trials(states=(TrialState.RUNNING,))


class _OneAtATime:
    """A task without batching: the calibration task less its batch methods."""

    name = "one-at-a-time"

    def __init__(self):
        from objectives.tasks.registry import CalibrationTask

        self._task = CalibrationTask()

    def study_from_attrs(self, attrs):
        return self._task.study_from_attrs(attrs)

    def suggest(self, trial, study, seed):
        return self._task.suggest(trial, study, seed)

    def run(self, config, device, checkpoint=None, every=None):
        return self._task.run(config, device)


class _OneAtATimeStudy(CalibrationStudy):
    def to_attrs(self):
        return {**super().to_attrs(), "task": "one-at-a-time"}


def test_tasks_without_batching_refuse_it(sqlite_url, monkeypatch):
    from objectives.tasks.registry import TASKS

    monkeypatch.setitem(TASKS, "one-at-a-time", _OneAtATime)
    storage = open_storage(sqlite_url, create=True)
    create_study(storage, _OneAtATimeStudy(label="c"), trials=2, sampler="random", seed=0)
    records = find_records(storage, None)
    with pytest.raises(HpsearchError, match="trains one trial at a time"):
        Worker(storage, records, device="cpu").run(batch=2)
    assert Worker(storage, records, device="cpu").auto_batch() == 1
    assert Worker(storage, records, device="cpu").run(batch=1).complete == 2


def test_calibration_trials_batch_like_the_rest(sqlite_url):
    """The calibration task (which measures the service) runs through the batched loop too:
    the same values as one at a time, trials held side by side."""
    storage = open_storage(sqlite_url, create=True, heartbeat=POLICY)
    create_study(
        storage, CalibrationStudy(label="c", seconds=0.3), trials=8, sampler="random", seed=0
    )
    records = find_records(storage, None)
    report = Worker(storage, records, device="cpu", seed=1, heartbeat=POLICY).run(batch=4)
    assert report.complete == 8
    trials = optuna.load_study(study_name="calibration-c", storage=storage).get_trials()
    # Side by side: four trials held at once (read from their start and end times, which a
    # busy machine stretches but does not reorder), not one after another.
    events = sorted(
        [(t.datetime_start, 1) for t in trials] + [(t.datetime_complete, -1) for t in trials],
        key=lambda e: (e[0], e[1]),
    )
    held = most = 0
    for _, change in events:
        held += change
        most = max(most, held)
    assert most == 4
    for t in trials:
        assert t.value == -sum((v - 1.0) ** 2 for v in t.user_attrs["config"]["x"])
    workers = {t.datetime_start for t in trials}
    assert len(workers) == 8


def test_auto_batch_on_cpu_is_one_at_a_time(sqlite_url):
    """Measured on a CPU, a batched search ran slower than one trial at a time."""
    storage = _storage(sqlite_url)
    k = Worker(storage, find_records(storage, None), device="cpu").auto_batch()
    assert k == 1


def test_cli_batch(sqlite_url):
    _storage(sqlite_url, trials=4)
    result = hpsearch(
        "worker", "--storage", sqlite_url, "--all", "--device", "cpu", "--batch", "auto"
    )
    assert result.returncode == 0, result.stderr
    assert "--batch auto:" in result.stderr and "4 complete" in result.stderr
    bad = hpsearch("worker", "--storage", sqlite_url, "--all", "--batch", "many")
    assert bad.returncode == 2 and "--batch takes a positive number" in bad.stderr
    for flags, message in (
        (
            ("--tf32", "maybe", "--batch", "2"),
            "--tf32: unknown tf32 'maybe': choose auto, on or off",
        ),
        (("--tf32", "on"), "--tf32 on applies to batched training"),
        (("--tf32", "on", "--batch", "2", "--device", "cpu"), "--tf32 on needs a CUDA device"),
        (
            ("--tf32", "on", "--batch", "2", "--device", "cpu", "--processes", "2"),
            "--tf32 on needs a CUDA device",
        ),
    ):
        bad = hpsearch("worker", "--storage", sqlite_url, "--all", *flags)
        assert bad.returncode == 2, bad.stderr
        assert bad.stderr.strip().endswith(message) or message in bad.stderr
        assert "Traceback" not in bad.stderr


def test_tf32_choice_per_shape(monkeypatch):
    """TF32 only on CUDA; 'auto' probes each network shape once and follows the verdict."""
    from hpsearch.worker.executors import choose_precision as _precision
    from objectives.tasks.registry import get_task

    task = get_task("capacity")
    config = capacity_config(hidden_size=4)
    wider = capacity_config(hidden_size=5)
    probed = []

    class Verdict:
        def __init__(self, ok):
            self.within_tolerance = ok

        def describe(self):
            return "probe"

    def fake_probe(config, device, precision):
        probed.append((config.hidden_size, device, precision))
        return Verdict(config.hidden_size == 4)

    monkeypatch.setattr(type(task), "probe_precision", lambda self, *a: fake_probe(*a))
    chosen = {}
    assert _precision(task, config, "cpu", "on", chosen) == "ieee"
    assert _precision(task, config, "cuda", "off", chosen) == "ieee"
    assert _precision(task, config, "cuda", "on", chosen) == "tf32"
    assert probed == []
    assert _precision(task, config, "cuda", "auto", chosen) == "tf32"
    assert _precision(task, config, "cuda", "auto", chosen) == "tf32"
    assert _precision(task, wider, "cuda", "auto", chosen) == "ieee"
    assert probed == [(4, "cuda", "tf32"), (5, "cuda", "tf32")]

    def broken_probe(self, *args):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(type(task), "probe_precision", broken_probe)
    assert _precision(task, capacity_config(hidden_size=6), "cuda", "auto", chosen) == "ieee"


def test_trial_that_cannot_join_a_batch_fails_alone(sqlite_url, monkeypatch):
    from hpsearch.worker.executors import BatchedExecutor
    from objectives.training.batched import BatchedTrainer

    storage = _storage(sqlite_url, trials=5, depths=(1,))
    original = BatchedTrainer.add
    calls = []

    def add_once_out_of_memory(self, config):
        calls.append(config.seed)
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return original(self, config)

    monkeypatch.setattr(BatchedTrainer, "add", add_once_out_of_memory)
    # Every trial through a batch: a group's first trial trains alone on a CPU, and whether
    # the next ones find it still training (and so add to a batch) depends on the timing.
    monkeypatch.setattr(BatchedExecutor, "_alone_objective", lambda self, task: None)
    report = Worker(storage, find_records(storage, None), device="cpu", heartbeat=POLICY).run(
        batch=3
    )
    study = optuna.load_study(study_name="capacity-rnn-p300", storage=storage)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert report.failed == 1 and len(failed) == 1
    assert "out of memory" in failed[0].user_attrs["error"]
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == report.complete
    assert report.complete >= 4
