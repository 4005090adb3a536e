"""The capacity search on a real PostgreSQL server: two workers, two studies, export."""

import json

import optuna
import pytest
from optuna.trial import TrialState

from tests.hpsearch.helpers import hpsearch, run_workers


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_capacity_search_on_postgres(postgres_url):
    assert (
        hpsearch(
            "create",
            "--storage",
            postgres_url,
            "--arch",
            "rnn,lstm",
            "--budget",
            "400",
            "--depths",
            "1,2",
            "--trials",
            "8",
            "--seed",
            "2",
            "--space",
            "max_steps=40",
        ).returncode
        == 0
    )
    run_workers(postgres_url, 2)
    storage = optuna.storages.RDBStorage(
        postgres_url.replace("postgresql://", "postgresql+psycopg://")
    )
    for name in ("capacity-rnn-p400", "capacity-lstm-p400"):
        trials = optuna.load_study(study_name=name, storage=storage).get_trials()
        assert sorted(t.number for t in trials) == list(range(8))
        assert all(t.state == TrialState.COMPLETE for t in trials)
    rows = json.loads(hpsearch("export", "--storage", postgres_url, "--format", "json").stdout)
    assert {r["study"] for r in rows} == {"capacity-rnn-p400", "capacity-lstm-p400"}
    assert sum(r["trials_complete"] for r in rows) == 16
    assert rows[0]["arch"] == "rnn"
    storage.engine.dispose()
