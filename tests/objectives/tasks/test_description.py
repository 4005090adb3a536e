import subprocess
import sys

import pytest

from objectives.tasks.description import describe, task_names
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
