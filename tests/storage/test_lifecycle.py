"""The trial lifecycle (`storage.lifecycle`): claim, heartbeat, complete, prune, fail, stop and
requeue, the target, the sweeps. One suite, run on SQLite and on PostgreSQL alike: these are
the guarantees many workers rely on, and the two databases lock differently."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import optuna
import pytest
from optuna.trial import TrialState

from storage import Heartbeat, HeartbeatPolicy, open_storage
from storage.lifecycle import StudyTrials

POLICY = HeartbeatPolicy(interval=1, grace=2, max_retry=3)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> str:
    """A fresh database of each kind (the postgres one is dropped afterwards; it fails, not
    skips, in CI without HPSEARCH_TEST_POSTGRES_URL: see tests/conftest.py)."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@dataclass
class Lifecycle:
    storage: optuna.storages.RDBStorage
    study: optuna.Study
    trials: StudyTrials
    heartbeat: Heartbeat


@pytest.fixture
def life(url: str) -> Iterator[Lifecycle]:
    """A study of target 3 (a name of its own), its trials, and a heartbeat that runs."""
    storage = open_storage(url, create=True, heartbeat=POLICY)
    name = f"lifecycle-{uuid.uuid4().hex[:8]}"
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    trials = StudyTrials(storage, study, target=3, max_retry=POLICY.max_retry)
    with Heartbeat(storage, POLICY.interval) as heartbeat:
        yield Lifecycle(storage, study, trials, heartbeat)
    optuna.delete_study(study_name=name, storage=storage)
    storage.engine.dispose()


def suggest(trial: optuna.trial.Trial) -> float:
    return trial.suggest_float("x", 0.0, 1.0)


def states(life: Lifecycle) -> list[TrialState]:
    return [t.state for t in life.study.get_trials(deepcopy=False)]


def test_claims_stop_at_the_target(life):
    claims = life.trials.claim(life.heartbeat, "w1", suggest, n=5)
    assert [c.number for c in claims] == [0, 1, 2]  # the target is 3
    assert all(c.prepared == c.trial.params["x"] for c in claims)
    assert life.trials.claim(life.heartbeat, "w2", suggest) == []
    trials = life.study.get_trials(deepcopy=False)
    assert [t.user_attrs["worker"] for t in trials] == ["w1"] * 3
    assert states(life) == [TrialState.RUNNING] * 3


def test_complete_prune_and_fail_write_once(life):
    done, pruned, failed = life.trials.claim(life.heartbeat, "w", suggest, n=3)
    assert life.trials.complete(done, life.heartbeat, 2.5, {"bits": 2.5})
    assert not life.trials.complete(done, life.heartbeat, 9.0, {})  # written already
    life.trials.report(pruned, 1.5, step=100)
    assert life.trials.prune(pruned, life.heartbeat, 1.5, {})
    assert life.trials.fail(failed, life.heartbeat, {"error": "boom"})
    trials = life.study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]
    assert trials[0].value == 2.5 and trials[0].user_attrs["bits"] == 2.5
    assert trials[1].intermediate_values == {100: 1.5} and trials[1].value == 1.5
    assert trials[2].user_attrs["error"] == "boom"
    # A failed trial frees its place in the target: one more may be claimed.
    assert [c.number for c in life.trials.claim(life.heartbeat, "w", suggest, n=2)] == [3]


def test_a_stopped_trial_is_queued_again_exactly_once_and_claimed_first(life):
    first, _ = life.trials.claim(life.heartbeat, "w1", suggest, n=2)
    life.trials.stop(first, life.heartbeat, {"interrupted": True})
    assert not life.trials._requeue_once(first.trial_id)  # a second stop queues nothing
    assert states(life) == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    # The queued trial takes a place of the target: only it, then one new trial, fit.
    again = life.trials.claim(life.heartbeat, "w2", suggest, n=5)
    assert [c.number for c in again] == [2, 3]
    assert again[0].trial.params == first.trial.params  # the same parameters, retried
    retried = life.study.get_trials(deepcopy=False)[2]
    assert retried.system_attrs["failed_trial"] == first.number


def test_queued_only_takes_no_new_trial(life):
    assert life.trials.claim(life.heartbeat, "w", suggest, queued_only=True) == []
    assert states(life) == []


def test_an_orphan_is_failed_by_the_next_claim(life):
    orphan = life.study.ask()  # asked, never beaten for: its worker died at once
    suggest(orphan)
    assert life.trials.others_running() is False  # the sweep failed it
    assert states(life) == [TrialState.FAIL]
    assert life.study.get_trials(deepcopy=False)[0].system_attrs["hpsearch:orphaned"] is True


def test_a_stale_trial_is_failed_and_retried_with_its_parameters(life):
    (held,) = life.trials.claim(life.heartbeat, "dead", suggest)
    life.heartbeat.release(held.trial_id)  # its worker stops beating
    assert life.trials.others_running() is True  # within the grace: still running
    time.sleep(POLICY.grace + 1.5)
    life.trials.sweep()
    assert states(life) == [TrialState.FAIL, TrialState.WAITING]
    (retry,) = life.trials.claim(life.heartbeat, "alive", suggest)
    assert retry.trial.params == held.trial.params
    # The dead worker's late result is not written over the sweep's verdict.
    assert not life.trials.complete(held, life.heartbeat, 1.0, {})
    assert states(life) == [TrialState.FAIL, TrialState.RUNNING]


def test_a_claim_that_fails_gives_its_trials_back(life):
    calls = []

    def breaks(trial: optuna.trial.Trial) -> float:
        calls.append(trial.number)
        if len(calls) == 2:
            raise ValueError("a config that cannot be made")
        return suggest(trial)

    with pytest.raises(ValueError):
        life.trials.claim(life.heartbeat, "w", breaks, n=3)
    assert states(life) == [TrialState.FAIL, TrialState.FAIL]  # nothing left RUNNING
    assert [c.number for c in life.trials.claim(life.heartbeat, "w", suggest, n=3)] == [2, 3, 4]
