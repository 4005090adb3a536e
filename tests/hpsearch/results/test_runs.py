"""Runs of one experiment: studies of the same settings that differ only in how they were
searched keep their tag as their run; a tag naming a variant is no run."""

from hpsearch.results.runs import runs
from hpsearch.studies.records import StudyRecord


def _record(name, tag, sampler="gp", seed=0, **settings):
    attrs = {"task": "capacity", "arch": "rnn", "budget": 1000, "n_in": 32, **settings}
    attrs |= {"tag": tag, "sampler": sampler, "seed": seed, "pruner": "none"}
    attrs["target_trials"] = 10
    return StudyRecord(name, "capacity", attrs)


def test_twins_are_runs_variants_are_not():
    records = [
        _record("p1000", ""),
        _record("p1000-tpe", "tpe", sampler="tpe", seed=1),  # searched apart: a run
        _record("p1000-n64", "n64", n_in=64),  # another setting: a variant
        # The tpe arm at a budget where it has no twin is still the tpe run.
        _record("p5000-tpe", "tpe", sampler="tpe", budget=5000),
    ]
    assert runs(records) == {"p1000": "", "p1000-tpe": "tpe", "p1000-n64": "", "p5000-tpe": "tpe"}


def test_no_twins_no_runs():
    assert runs([_record("a", "x"), _record("b", "y", n_in=16)]) == {"a": "", "b": ""}
