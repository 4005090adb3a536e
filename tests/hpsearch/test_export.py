"""The best-bits data layer on a hand-made study with known trials."""

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from hpsearch.experiment import Experiment
from hpsearch.export import best_rows, render
from hpsearch.status import study_status
from hpsearch.studies import create_studies
from storage import open_storage


def _trial(bits, depth, b, state=TrialState.COMPLETE, hidden=10, params=100):
    attrs = {
        "bits": bits,
        "bits_per_param": bits / params,
        "num_params": params,
        "hidden_size": hidden,
        "depth": depth,
        "config": {"b": b, "learning_rate": 0.01, "init_scale": 1.0},
    }
    return create_trial(
        state=state,
        value=bits if state == TrialState.COMPLETE else None,
        params={"depth": depth, "x": 0.5},
        distributions={"depth": CategoricalDistribution([1, 2]), "x": FloatDistribution(0, 1)},
        user_attrs=attrs,
    )


def test_best_row_per_study_and_depth(sqlite_url):
    storage = open_storage(sqlite_url, create=True)
    create_studies(
        storage, Experiment(archs=("gru", "rnn"), budgets=(500,), depths=(1, 2), trials=10, seed=0)
    )
    rnn = optuna.load_study(study_name="capacity-rnn-p500", storage=storage)
    for t in [
        _trial(100.0, 1, 150),
        _trial(300.0, 1, 400),
        _trial(250.0, 2, 300),
        _trial(0.0, 2, 50),
        _trial(999.0, 1, 9, state=TrialState.FAIL),
        _trial(999.0, 1, 9, state=TrialState.PRUNED),
    ]:
        rnn.add_trial(t)
    gru = optuna.load_study(study_name="capacity-gru-p500", storage=storage)
    gru.add_trial(_trial(80.0, 2, 100))

    rows = best_rows(storage)
    assert [(r.arch, r.depth) for r in rows] == [("rnn", 1), ("rnn", 2), ("gru", 2)]
    first = rows[0]
    assert (first.best_bits, first.b, first.trials_complete) == (300.0, 400, 2)
    assert first.bits_per_param == 3.0 and first.budget == 500
    assert (rows[1].best_bits, rows[1].trials_complete) == (250.0, 2)
    assert rows[2].study == "capacity-gru-p500"

    md = render(rows, "md").splitlines()
    assert len(md) == 5 and "| capacity-rnn-p500 | capacity | rnn | 1 | 500 |" in md[2]

    status = {s.study: s for s in study_status(storage)}
    assert (status["capacity-rnn-p500"].complete, status["capacity-rnn-p500"].failed) == (4, 1)
    assert status["capacity-rnn-p500"].pruned == 1
    assert status["capacity-rnn-p500"].best_bits == 300.0


def test_foreign_studies_are_ignored(sqlite_url):
    storage = open_storage(sqlite_url, create=True)
    optuna.create_study(storage=storage, study_name="someone-elses")
    assert best_rows(storage) == []
    assert study_status(storage) == []
