import subprocess
import sys
from dataclasses import replace

import pytest

from objectives.tasks.description import describe, describe_stored, task_names
from objectives.tasks.registry import TASKS


def test_every_registered_task_describes_itself():
    assert set(task_names()) == set(TASKS)
    for name in TASKS:
        d = describe(name)
        assert d.name == name
        assert d.metric
        assert d.format_value(1.25)


def test_capacity_is_the_per_parameter_task():
    assert describe("capacity").per_param
    assert not describe("per-unit").per_param
    assert describe("capacity").format_value(12.34) == "12.3 bits"


def test_an_unknown_task_names_the_known_ones():
    with pytest.raises(ValueError, match="known: calibration, capacity, per-unit"):
        describe("nope")


def test_describing_imports_no_torch():
    code = (
        "import sys\nfrom objectives.tasks.description import describe\n"
        "[describe(t) for t in ('capacity', 'per-unit', 'calibration')]\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_each_task_says_its_table_note_and_how_create_sizes_it():
    capacity, per_unit, calibration = (describe(t) for t in ("capacity", "per-unit", "calibration"))
    assert (capacity.table, per_unit.table, calibration.table) == ("best", "per-unit", "")
    assert (capacity.sizes, per_unit.sizes, calibration.sizes) == ("budgets", "units", "")
    assert capacity.noted and per_unit.noted and not calibration.noted
    assert capacity.note_export and not per_unit.note_export


def test_a_task_name_a_storage_holds_but_this_version_does_not_know_is_plain():
    plain = describe_stored("from-a-newer-version")
    assert plain.name == "from-a-newer-version"
    assert (plain.metric, plain.table, plain.noted) == ("value", "", False)
    assert plain.format_value(0.123456) == "0.1235"
    assert describe_stored("capacity") == describe("capacity")


def test_a_description_that_contradicts_itself_is_refused():
    base = describe("per-unit")
    with pytest.raises(ValueError, match="per_param"):
        replace(base, table="best")
    with pytest.raises(ValueError, match="table"):
        replace(base, table="nope")
    with pytest.raises(ValueError, match="study and sizes"):
        replace(base, sizes="")
