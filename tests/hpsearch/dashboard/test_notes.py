"""The dashboard's study notes: their text for each task (read from the task's description)
stays word for word what it was, and writing a note draws no figure it does not need."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from hpsearch.dashboard.notes import name_metrics, note_text
from hpsearch.studies.records import StudyRecord, create_studies, list_records
from hpsearch.studies.schema import Experiment
from storage import open_storage
from tests.testing import ROOT

URL = "postgresql+psycopg://bob:pw@db/hp"

CAPACITY_TASK = (
    "**Task**: per-parameter capacity (Collins, Sohl-Dickstein & Sussillo, ICLR 2017). The "
    "network memorises `b` random binary labels of 32-bit inputs shown at the first of 5 "
    "steps; the value is the mutual information between true and predicted labels, in bits: "
    "`b * (1 - H2(p))`."
)
CAPACITY_SEARCH = (
    "**Search** (gp, target 6 trials): `depth` {1, 2}; `b` [250, 8000] log; `learning_rate` "
    "[0.0001, 0.1] log; `init_scale` [0.1, 3] log. Fixed: `activation` = tanh; `optimizer` = "
    "adam; `gate_bias` = 1.0; `grad_clip` = 0.0; `max_steps` = 2000; `lr_schedule` = "
    "constant; `init_scheme` = scaled-normal."
)
CAPACITY_NOTE = (
    "## capacity-gru-p500-tpe\n\n"
    f"{CAPACITY_TASK}\n\n"
    "**Cell**: gru; **budget**: 500 parameters; hidden units: 4 at depth 1, 3 at depth 2.\n\n"
    f"{CAPACITY_SEARCH}\n\n"
    "**Best so far**: 900.0 bits = **1.915 bits/param** (trial 1: depth 2, 470 parameters, "
    "b = 1000, error fraction 0.0123). 3 of 6 trials complete.\n\n"
    "**Export**: `hpsearch export --storage postgresql+psycopg://bob:***@db/hp --arch gru "
    "--budget 500 --table all` (add `--format latex` for a paper); figures: "
    "`hpsearch plot --out figures/`.\n"
)
PER_UNIT_HEAD = (
    "## per-unit-rnn-n16\n\n"
    "**Task**: per-unit capacity (Collins, Sohl-Dickstein & Sussillo, ICLR 2017, the "
    "memory-throughput task). A random 64-dimensional input, shown at the first of 12 steps, "
    "is to be reconstructed from the network's state at the last step; the value is the "
    "fraction reconstructed (1 is all of it). The paper finds that every cell succeeds if and "
    "only if it has at least n_in units per layer.\n\n"
    "**Cell**: rnn; **units**: 16 per layer; **n_in**: 64; **inputs**: uniform (variance 1).\n\n"
    "**Search** (gp, target 3 trials): `learning_rate` [0.0001, 0.1] log; `init_scale` "
    "[0.1, 3] log. Fixed: `depth` = 1; `activation` = tanh; `optimizer` = adam; `gate_bias` = "
    "1.0; `grad_clip` = 0.0; `max_steps` = 2000; `lr_schedule` = constant; `init_scheme` = "
    "scaled-normal.\n\n"
)
PER_UNIT_NOTE = (
    PER_UNIT_HEAD + "**Best so far**: **0.9530** of the input reconstructed (trial 1, depth 1). "
    "2 of 3 trials complete.\n"
)
PER_UNIT_EMPTY = PER_UNIT_HEAD + "**Best so far**: no complete trial yet (target 3).\n"


def _populate(url: str) -> optuna.storages.BaseStorage:
    """A tagged capacity study (two trials tie for best: the earlier one is shown) and a
    per-unit study, with trials."""
    storage = open_storage(url, create=True)
    capacity = Experiment(
        archs=("gru",), budgets=(500,), depths=(1, 2), trials=6, seed=0, tag="tpe"
    )
    per_unit = Experiment(
        archs=("rnn",), task="per-unit", units=(16,), depths=(1,), trials=3, seed=1
    )
    create_studies(storage, capacity, per_unit)
    study = optuna.load_study(study_name="capacity-gru-p500-tpe", storage=storage)
    space = {"depth": CategoricalDistribution([1, 2]), "x": FloatDistribution(0, 1)}
    for bits, depth, params, b in [
        (300.0, 1, 480, 400),
        (900.0, 2, 470, 1000),
        (900.0, 1, 480, 950),
    ]:
        attrs = {
            "bits": bits,
            "bits_per_param": bits / params,
            "num_params": params,
            "hidden_size": 7,
            "depth": depth,
            "error_fraction": 0.0123,
            "config": {"b": b, "learning_rate": 0.01, "init_scale": 1.0},
        }
        study.add_trial(
            create_trial(
                value=bits, params={"depth": depth, "x": 0.5}, distributions=space, user_attrs=attrs
            )
        )
    study = optuna.load_study(study_name="per-unit-rnn-n16", storage=storage)
    one = {"depth": CategoricalDistribution([1])}
    for value in (0.25, 0.953):
        study.add_trial(
            create_trial(
                value=value,
                params={"depth": 1},
                distributions=one,
                user_attrs={"depth": 1, "num_params": 300},
            )
        )
    study.add_trial(create_trial(state=TrialState.FAIL, params={"depth": 1}, distributions=one))
    return storage


def _notes(storage: optuna.storages.BaseStorage, url: str, empty: bool) -> dict[str, str]:
    out = {}
    for record in list_records(storage):
        trials = (
            []
            if empty
            else storage.get_all_trials(storage.get_study_id_from_name(record.name), deepcopy=False)
        )
        out[record.name] = note_text(record, trials, url)
    return out


def test_notes_read_as_before(sqlite_url):
    storage = _populate(sqlite_url)
    notes = _notes(storage, URL, empty=False)
    assert notes == {"capacity-gru-p500-tpe": CAPACITY_NOTE, "per-unit-rnn-n16": PER_UNIT_NOTE}
    empty = _notes(storage, "sqlite:///x.db", empty=True)
    assert empty["per-unit-rnn-n16"] == PER_UNIT_EMPTY
    assert empty["capacity-gru-p500-tpe"] == CAPACITY_NOTE.replace(
        CAPACITY_NOTE[CAPACITY_NOTE.index("**Best") : CAPACITY_NOTE.index("**Export")],
        "**Best so far**: no complete trial yet (target 6).\n\n",
    ).replace("postgresql+psycopg://bob:***@db/hp", "sqlite:///x.db")


def test_objectives_named_by_the_task_description(sqlite_url):
    storage = _populate(sqlite_url)
    optuna.create_study(storage=storage, study_name="someone-elses")
    assert name_metrics(storage) == 2
    names = {
        s.study_name: optuna.load_study(study_name=s.study_name, storage=storage).metric_names
        for s in storage.get_all_studies()
    }
    assert names["capacity-gru-p500-tpe"] == ["bits"]
    assert names["per-unit-rnn-n16"] == ["fraction reconstructed"]
    assert names["someone-elses"] is None
    assert name_metrics(storage) == 0  # named already


def test_a_calibration_study_gets_no_note(sqlite_url):
    from hpsearch.dashboard.notes import noted

    storage = _populate(sqlite_url)
    record = StudyRecord("calibration-x", "calibration", {"task": "calibration"})
    assert [r.name for r in list_records(storage) if noted(r)] == [
        "capacity-gru-p500-tpe",
        "per-unit-rnn-n16",
    ]
    assert not noted(record)


_PUBLISH = """
import sys
from hpsearch.dashboard.notes import publish
from storage import open_storage
storage = open_storage(sys.argv[1])
print(publish(storage, sys.argv[2:] or None))
print("plotly" in sys.modules)
"""


@pytest.mark.timeout(120)
def test_a_note_without_a_figure_imports_no_plotly(tmp_path):
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    storage = _populate(url)
    storage.engine.dispose()

    def publish(*names: str) -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", _PUBLISH, url, *names],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=100,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    # Only the per-unit study: no figure to draw, so plotly is never imported.
    assert publish("per-unit-rnn-n16") == ["1", "False"]
    # The capacity study has rows: its figure is drawn, with plotly.
    assert publish() == ["2", "True"]
