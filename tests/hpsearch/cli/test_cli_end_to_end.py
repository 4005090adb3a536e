"""create + two concurrent workers + export on a temporary SQLite file."""

import csv
import io
import json

import optuna
import pytest
from optuna.trial import TrialState

from hpsearch.results.rows import BestRow
from tests.testing import TRIAL_ATTRS, create_args, hpsearch, run_workers

KEYS = [
    "study",
    "task",
    "arch",
    "depth",
    "budget",
    "num_params",
    "hidden_size",
    "best_bits",
    "bits_per_param",
    "b",
    "learning_rate",
    "init_scale",
    "trials_complete",
    "tag",
]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_workers_share_studies_and_stop_at_target(sqlite_url):
    created = hpsearch(
        *create_args(
            sqlite_url,
            12,
            *("--seed", "5", "--space", "max_steps=60", "--space", "b=16:400"),
            archs="rnn,gru",
            depths="1,2",
        )
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.split() == ["capacity-rnn-p300", "capacity-gru-p300"]

    logs = run_workers(sqlite_url, 2)
    # Both workers did real work, and their samplers were seeded differently.
    seeds = [
        line.split("sampler seed ")[1]
        for log in logs
        for line in log.splitlines()
        if "sampler seed" in line
    ]
    assert len(seeds) == 2 and seeds[0] != seeds[1]
    assert all(" bits (" in log for log in logs)

    storage = optuna.storages.RDBStorage(sqlite_url)
    workers_used: set[str] = set()
    for name in ("capacity-rnn-p300", "capacity-gru-p300"):
        trials = optuna.load_study(study_name=name, storage=storage).get_trials()
        assert sorted(t.number for t in trials) == list(range(12))
        assert all(t.state == TrialState.COMPLETE for t in trials)
        workers_used.update(t.user_attrs["worker"] for t in trials)
        for t in trials:
            for key in TRIAL_ATTRS:
                assert key in t.user_attrs
            assert t.value == t.user_attrs["bits"]
            assert t.user_attrs["num_params"] <= 300
    assert len(workers_used) == 2  # both workers ran trials of these studies

    out = hpsearch("export", "--storage", sqlite_url, "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert rows and all(list(r) == KEYS for r in rows)
    assert [r["arch"] for r in rows] == sorted((r["arch"] for r in rows), key=["rnn", "gru"].index)
    for name in ("capacity-rnn-p300", "capacity-gru-p300"):
        mine = [r for r in rows if r["study"] == name]
        assert sum(r["trials_complete"] for r in mine) == 12
        trials = optuna.load_study(study_name=name, storage=storage).get_trials()
        for row in mine:
            at_depth = [t for t in trials if t.params.get("depth") == row["depth"]]
            assert row["trials_complete"] == len(at_depth)
            assert row["best_bits"] == max(t.value for t in at_depth)
            assert row["bits_per_param"] == pytest.approx(row["best_bits"] / row["num_params"])

    csv_out = hpsearch("export", "--storage", sqlite_url, "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(csv_out.stdout)))
    assert [r["study"] for r in parsed] == [r["study"] for r in rows]
    md = hpsearch("export", "--storage", sqlite_url).stdout.splitlines()
    assert md[0].startswith("| study | task | arch | depth |") and len(md) == 2 + len(rows)

    status = hpsearch("status", "--storage", sqlite_url)
    assert status.returncode == 0
    assert "12/12" in status.stdout and "capacity-gru-p300" in status.stdout

    again = hpsearch("worker", "--storage", sqlite_url, "--all", "--device", "cpu")
    assert again.returncode == 0 and "0 complete" in again.stderr


def test_export_to_file(sqlite_url, tmp_path):
    assert hpsearch(*create_args(sqlite_url, 2, "--space", "max_steps=20")).returncode == 0
    assert hpsearch("worker", "--storage", sqlite_url, "--all", "--device", "cpu").returncode == 0
    out = tmp_path / "table.json"
    result = hpsearch("export", "--storage", sqlite_url, "--format", "json", "--out", str(out))
    assert result.returncode == 0 and result.stdout == ""
    rows = json.loads(out.read_text())
    assert len(rows) == 1 and rows[0]["trials_complete"] == 2
    assert set(rows[0]) == {f.name for f in BestRow.__dataclass_fields__.values()}
