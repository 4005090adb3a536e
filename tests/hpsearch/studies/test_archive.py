"""Archives of whole studies (`hpsearch export --table trials --format jsonl`, `hpsearch
import`): the round trip is exact on SQLite and PostgreSQL for trials of every state, an
archive imported twice adds nothing, a clash or a bad file writes nothing, and an imported
study continues with workers to exactly its target."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from hpsearch.cli import main
from hpsearch.search.proposals import FIT_ATTR, PROPOSAL_ATTR
from hpsearch.studies.archive import read_archive
from storage import open_storage
from tests.testing import calibration_study, snapshot

SPACE = {"x0": FloatDistribution(-5.0, 5.0), "x1": FloatDistribution(-5.0, 5.0)}


def _value(x: dict[str, float]) -> float:
    return -sum((v - 1.0) ** 2 for v in x.values())


def _add(study: optuna.Study, state: TrialState, x: dict[str, float], **kw: Any) -> int:
    """A trial of `state` at point x (a RUNNING one is a stale trial's remains); its id."""
    values = [_value(x)] if state in (TrialState.COMPLETE, TrialState.PRUNED) else None
    trial = optuna.trial.create_trial(
        state=state,
        values=values,
        params=x,
        distributions={k: SPACE[k] for k in x},
        **kw,
    )
    return study._storage.create_new_trial(study._study_id, template_trial=trial)


def fill(study: optuna.Study, url: str) -> None:
    """Trials of every state, as a gp-batch run leaves them: complete ones with reports and
    attrs, a pruned one (a NaN report among them), a failed one and its queued retry, a stale
    RUNNING one, two queued proposals; and a fit lease and metric names on the study."""
    for i in range(4):
        x = {"x0": 0.5 * i - 1.0, "x1": 1.0 / 3.0 + i}
        _add(
            study,
            TrialState.COMPLETE,
            x,
            user_attrs={"value": _value(x), "seconds": 0.001 * i, "config": {"x": [*x.values()]}},
            intermediate_values={10: _value(x) - 1.0, 20: _value(x)},
        )
    _add(
        study,
        TrialState.PRUNED,
        {"x0": 4.0, "x1": -4.5},
        intermediate_values={10: float("nan"), 20: -40.0},
    )
    failed = {"x0": 2.25, "x1": -0.125}
    _add(study, TrialState.FAIL, failed, user_attrs={"error": "CUDA out of memory"})
    _add(study, TrialState.WAITING, failed, system_attrs={"failed_trial": 5, "retry_history": [5]})
    running = _add(study, TrialState.RUNNING, {"x0": 0.75})  # died after its first suggest
    open_storage(url).record_heartbeat(running)
    for index, x in enumerate(({"x0": 1.5, "x1": 0.5}, {"x0": -2.0, "x1": 3.0})):
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.WAITING,
                system_attrs={"fixed_params": x, PROPOSAL_ATTR: f"fit-1/{index}"},
            )
        )
    study.set_metric_names(["value"])
    study._storage.set_study_system_attr(study._study_id, FIT_ATTR, {"by": "w1", "until": 0})


def source(url: str, label: str = "arch", trials: int = 16) -> optuna.Study:
    study = calibration_study(url, label, trials)
    fill(study, url)
    return study


def export(url: str, out: Path, *extra: str) -> None:
    args = ["export", "--storage", url, "--table", "trials", "--format", "jsonl"]
    assert main([*args, "--out", str(out), *extra]) == 0


def run_import(path: Path, url: str) -> int:
    return main(["import", str(path), "--storage", url])


def same(trial: FrozenTrial) -> dict[str, Any]:
    """Everything of a trial but its storage id (NaN compared as a word)."""

    def clean(v: Any) -> Any:
        return "nan" if isinstance(v, float) and math.isnan(v) else v

    return {
        "number": trial.number,
        "state": trial.state,
        "values": trial.values,
        "params": trial.params,
        "distributions": trial.distributions,
        "user_attrs": trial.user_attrs,
        "system_attrs": trial.system_attrs,
        "intermediate_values": {k: clean(v) for k, v in trial.intermediate_values.items()},
        "datetime_start": trial.datetime_start,
        "datetime_complete": trial.datetime_complete,
    }


def trials_of(url: str, name: str) -> list[dict[str, Any]]:
    storage = open_storage(url)
    study_id = storage.get_study_id_from_name(name)
    return [same(t) for t in sorted(storage.get_all_trials(study_id), key=lambda t: t.number)]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'target.db'}"
    return str(request.getfixturevalue("postgres_url"))


def test_the_round_trip_is_exact(sqlite_url, target_url, tmp_path, capsys):
    study = source(sqlite_url)
    first, second = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    export(sqlite_url, first)
    assert run_import(first, target_url) == 0
    assert capsys.readouterr().out == f"{study.study_name}: imported, 10 trials\n"
    export(target_url, second)
    assert second.read_bytes() == first.read_bytes()
    # The same trials, field by field, and the same study settings: not only the same file.
    assert trials_of(target_url, study.study_name) == trials_of(sqlite_url, study.study_name)
    states = [t["state"] for t in trials_of(target_url, study.study_name)]
    assert set(states) == {
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.FAIL,
        TrialState.RUNNING,
        TrialState.WAITING,
    }
    there = optuna.load_study(study_name=study.study_name, storage=open_storage(target_url))
    assert there.user_attrs == study.user_attrs
    assert there.directions == study.directions
    assert there.metric_names == ["value"]
    # The fit lease is a lock of one storage, not part of the study.
    assert FIT_ATTR not in there._storage.get_study_system_attrs(there._study_id)
    # The archive is JSON lines: one study line, its trials, an end line.
    lines = [json.loads(line) for line in gzip.decompress(first.read_bytes()).splitlines()]
    assert [line["kind"] for line in lines] == ["study"] + ["trial"] * 10 + ["end"]
    assert "trial_id" not in json.dumps(lines) and "study_id" not in json.dumps(lines)


def test_a_plain_archive_to_stdout_reads_back(sqlite_url, tmp_path, capsys):
    source(sqlite_url)
    assert main(["export", "--storage", sqlite_url, "--table", "trials", "--format", "jsonl"]) == 0
    path = tmp_path / "a.jsonl"
    path.write_text(capsys.readouterr().out)
    (study,) = read_archive(path)
    assert [t.state for t in study.trials][:6] == [TrialState.COMPLETE] * 4 + [
        TrialState.PRUNED,
        TrialState.FAIL,
    ]
    assert study.user_attrs["target_trials"] == 16


def test_importing_twice_adds_nothing(sqlite_url, tmp_path, capsys):
    study = source(sqlite_url)
    path, again = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    export(sqlite_url, path)
    target = f"sqlite:///{tmp_path / 'target.db'}"
    assert run_import(path, target) == 0
    before = trials_of(target, study.study_name)
    capsys.readouterr()
    assert run_import(path, target) == 0
    assert "unchanged, its 10 trials are there already" in capsys.readouterr().out
    assert trials_of(target, study.study_name) == before
    export(target, again)
    assert again.read_bytes() == path.read_bytes()


def test_a_newer_archive_adds_only_its_new_trials(sqlite_url, tmp_path, capsys):
    """Trials are identified by number: the ones there are kept as stored (a RUNNING one there
    stays RUNNING), the archive's later ones are added."""
    study = source(sqlite_url)
    old, new, back = tmp_path / "old.jsonl", tmp_path / "new.jsonl", tmp_path / "back.jsonl"
    export(sqlite_url, old)
    target = f"sqlite:///{tmp_path / 'target.db'}"
    assert run_import(old, target) == 0
    _add(study, TrialState.COMPLETE, {"x0": 1.0, "x1": 1.0})
    _add(study, TrialState.FAIL, {"x0": 0.0, "x1": 0.0})
    export(sqlite_url, new)
    capsys.readouterr()
    assert run_import(new, target) == 0
    assert capsys.readouterr().out == f"{study.study_name}: 2 trials added to the 10 there\n"
    export(target, back)
    assert back.read_bytes() == new.read_bytes()


def _two_study_archive(sqlite_url: str, tmp_path: Path) -> Path:
    source(sqlite_url, "one")
    source(sqlite_url, "two")
    path = tmp_path / "two.jsonl"
    export(sqlite_url, path)
    return path


def test_a_clash_exits_2_and_writes_nothing(sqlite_url, tmp_path, capsys):
    """The storage has calibration-two with another target: nothing is imported, not even
    calibration-one, which it does not have."""
    path = _two_study_archive(sqlite_url, tmp_path)
    target = f"sqlite:///{tmp_path / 'target.db'}"
    calibration_study(target, "two", trials=99)
    before = snapshot(target)
    capsys.readouterr()
    assert run_import(path, target) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert "calibration-two exists with other settings (target_trials)" in err
    assert "nothing imported" in err
    assert snapshot(target) == before


def test_other_trials_under_the_same_numbers_clash(sqlite_url, tmp_path, capsys):
    path = _two_study_archive(sqlite_url, tmp_path)
    target = f"sqlite:///{tmp_path / 'target.db'}"
    other = calibration_study(target, "one", trials=16)
    _add(other, TrialState.COMPLETE, {"x0": 3.0, "x1": 3.0})
    before = snapshot(target)
    capsys.readouterr()
    assert run_import(path, target) == 2
    err = capsys.readouterr().err
    assert "calibration-one holds other trials under the numbers #0" in err, err
    assert snapshot(target) == before


def _cut(text: str, at: str) -> str:
    lines = text.splitlines(keepends=True)
    return {
        "mid-line": "".join(lines[:5]) + lines[5][: len(lines[5]) // 2],
        "at a trial": "".join(lines[:5]),
        "before the end": "".join(lines[:-1]),
    }[at]


@pytest.mark.parametrize(
    ("how", "said"),
    [
        ("csv", "line 1: not an hpsearch archive (not JSON)"),
        ("json", "line 1: not an hpsearch archive (not JSON)"),
        ("other lines", "line 1: not an hpsearch archive (no study or trial line)"),
        ("empty", "not an hpsearch archive (no study line)"),
        ("mid-line", "line 6: truncated, or not an hpsearch archive (not JSON)"),
        ("at a trial", "truncated: study calibration-arch has 4 of its 10 trials"),
        ("before the end", "truncated (no end line after its last study)"),
        ("gzip", "a broken or truncated gzip file"),
        ("bad trial", "line 2: not a valid trial"),
    ],
)
def test_a_bad_file_exits_2_with_one_line(sqlite_url, tmp_path, capsys, how, said):
    source(sqlite_url)
    good = tmp_path / "good.jsonl"
    export(sqlite_url, good)
    text = good.read_text()
    bad = tmp_path / "bad.jsonl"
    if how in ("csv", "json"):
        args = ["export", "--storage", sqlite_url, "--table", "trials", "--format", how]
        assert main([*args, "--out", str(bad)]) == 0
    elif how == "empty":
        bad.write_text("")
    elif how == "other lines":
        bad.write_text('{"study": "calibration-arch", "number": 0}\n')
    elif how == "gzip":
        bad.write_bytes(gzip.compress(text.encode())[:-20])
    elif how == "bad trial":
        lines = text.splitlines(keepends=True)
        line = json.loads(lines[1])
        line["params"]["x0"] = 7.5  # outside its distribution
        bad.write_text(lines[0] + json.dumps(line) + "\n" + "".join(lines[2:]))
    else:
        bad.write_text(_cut(text, how))
    target = tmp_path / "target.db"
    capsys.readouterr()
    assert run_import(bad, f"sqlite:///{target}") == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert said in err, err
    assert not target.exists()  # the file is read before the storage is touched


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--table", "best"], "add --table trials"),
        (["--table", "trials", "--depth", "1"], "drop --depth"),
        (["--table", "trials", "--study", "calibration-nope"], "no hpsearch study named"),
    ],
)
def test_export_jsonl_refuses_what_is_not_an_archive(sqlite_url, capsys, extra, said):
    source(sqlite_url)
    assert main(["export", "--storage", sqlite_url, "--format", "jsonl", *extra]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and said in err, err


@pytest.mark.slow
def test_an_imported_study_resumes_and_meets_its_target_exactly(sqlite_url, tmp_path):
    """Three workers on the imported study: the queued proposals and the retry run with their
    parameters, the stale RUNNING trial is failed and retried once its grace has passed, and
    the study stops at exactly its target."""
    from tests.testing import start_worker, wait_for

    study = source(sqlite_url, trials=16)
    path = tmp_path / "run.jsonl.gz"
    export(sqlite_url, path)
    target = f"sqlite:///{tmp_path / 'target.db'}"
    assert run_import(path, target) == 0
    workers = [start_worker(target) for _ in range(3)]
    logs = wait_for(workers, 240)
    assert [w.returncode for w in workers] == [0, 0, 0], logs
    after = sorted(
        optuna.load_study(study_name=study.study_name, storage=open_storage(target)).get_trials(),
        key=lambda t: t.number,
    )
    assert [t.number for t in after] == list(range(len(after)))
    counted = [t for t in after if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(counted) == 16
    assert not [t for t in after if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    # The trials that were finished are as they were.
    before = trials_of(sqlite_url, study.study_name)
    assert [same(t) for t in after[:6]] == before[:6]
    # The queue: the retry of #5 and the two proposals ran with their parameters, in place.
    assert after[6].state == TrialState.COMPLETE and after[6].params == after[5].params
    for number, index in ((8, 0), (9, 1)):
        trial = after[number]
        assert trial.state == TrialState.COMPLETE
        assert trial.system_attrs[PROPOSAL_ATTR] == f"fit-1/{index}"
        assert trial.params == trial.system_attrs["fixed_params"]
    # The stale RUNNING trial was failed by the sweep and its parameters queued again.
    assert after[7].state == TrialState.FAIL
    (retry,) = [t for t in after if t.system_attrs.get("retry_history") == [7]]
    assert retry.state == TrialState.COMPLETE and retry.params["x0"] == 0.75
