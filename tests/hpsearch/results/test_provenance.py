"""The settings and versions behind a report's numbers: what every study states, what varies
between them, and the versions, read without importing torch."""

import subprocess
import sys
from datetime import date

import optuna
import pytest

import hpsearch
from hpsearch.results.provenance import settings_by_task, summarise, versions
from hpsearch.results.report import collect_report, render_markdown
from hpsearch.studies.records import create_study, list_records
from objectives.tasks.capacity.study import build_study


@pytest.fixture
def memory():
    storage = optuna.storages.InMemoryStorage()
    for budget, steps, sampler in (
        (1000, "2000", "gp"),
        (5000, "2000", "gp"),
        (1000, "500", "tpe"),
    ):
        settings = build_study(
            "rnn",
            budget,
            depths=(1,),
            tag="" if steps == "2000" else "short",
            overrides={"max_steps": steps},
        )
        create_study(storage, settings, trials=50, sampler=sampler, seed=3)
    return storage


def test_summarise():
    assert summarise(["2000", "2000"]) == "2000"
    assert summarise(["500", "2000", "2000"]) == "2000 (2 studies), 500 (1 study)"


def test_settings_stated_and_varying(memory):
    (capacity,) = settings_by_task(list_records(memory))
    assert capacity.task == "capacity" and capacity.studies == 3
    assert dict(capacity.stated) == {
        "max_steps": "2000 (2 studies), 500 (1 study)",
        "patience": "200",
        "sampler": "gp (2 studies), tpe (1 study)",
        "pruner": "none",
        "seed": "3",
        "target trials": "50",
    }
    # The budget and b (which follows it) vary too, but the rows show them.
    assert dict(capacity.varying) == {"tag": "none (2 studies), short (1 study)"}


def test_the_header_states_the_settings_and_versions(memory):
    text = render_markdown(collect_report(memory, "sqlite:///x.db", 3, day=date(2026, 1, 2)))
    header = text.split("## Claims")[0]
    assert "trials: 0 (0 complete) of 150 targeted" in header
    assert (
        "- Settings of the capacity studies: max_steps 2000 (2 studies), 500 (1 study); "
        "patience 200; sampler gp (2 studies), tpe (1 study); pruner none; seed 3; "
        "target trials 50.\n"
    ) in header
    assert "  - Settings that vary between them: tag none (2 studies), short (1 study).\n" in header
    assert (
        f"- Versions: hpsearch {hpsearch.__version__}, Optuna {optuna.__version__}, torch "
        in header
    )


def test_versions_are_read_without_importing_torch():
    code = (
        "import sys\n"
        "from hpsearch.results.provenance import versions\n"
        "found = dict(versions())\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "print(found['torch'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == dict(versions())["torch"] != ""
