import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from storage import Heartbeat, HeartbeatPolicy, StorageError, open_storage


def test_missing_sqlite_file_is_an_error_without_create(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'none.db'}"
    with pytest.raises(StorageError, match="no database at"):
        open_storage(url)
    assert not (tmp_path / "none.db").exists()


def test_missing_folder(tmp_path: Path):
    with pytest.raises(StorageError, match="does not exist"):
        open_storage(f"sqlite:///{tmp_path / 'no' / 'x.db'}", create=True)


def test_not_a_database(tmp_path: Path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match=r"junk\.db"):
        open_storage(f"sqlite:///{path}")


def test_unreachable_postgres_is_one_line_without_password():
    with pytest.raises(StorageError) as info:
        open_storage("postgresql://bob:hunter2@127.0.0.1:1/nothing")
    assert "hunter2" not in str(info.value)
    assert "\n" not in str(info.value)


def test_heartbeat_policy_validation():
    with pytest.raises(ValueError, match="grace"):
        HeartbeatPolicy(interval=10, grace=5)
    with pytest.raises(ValueError):
        HeartbeatPolicy(interval=0, grace=5)


def test_stale_trial_is_failed_and_retried_with_same_params(sqlite_url: str):
    storage = open_storage(
        sqlite_url, create=True, heartbeat=HeartbeatPolicy(interval=1, grace=2, max_retry=1)
    )
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    with Heartbeat(storage, interval=1) as beat:
        alive = study.ask()
        alive.suggest_float("x", 0, 1)
        beat.hold(alive._trial_id)
        dead = study.ask()
        dead.suggest_float("x", 0, 1)
        storage.record_heartbeat(dead._trial_id)  # beats once, then its worker "dies"
        time.sleep(3.5)
        optuna.storages.fail_stale_trials(study)
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    assert states[alive.number] == TrialState.RUNNING  # kept alive by the heartbeat thread
    assert states[dead.number] == TrialState.FAIL
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert len(waiting) == 1
    assert waiting[0].params == {"x": dead.params["x"]}
