"""--batch auto on a CPU: K > 1 for studies of minibatch trials only (where a batch pays),
one at a time where any study trains full batch."""

import pytest

from hpsearch.studies.records import create_studies, find_records
from hpsearch.worker.executors import CPU_MINIBATCH_BATCH
from hpsearch.worker.loop import Worker
from storage import open_storage


def _auto(url: str, *spaces: dict[str, str]) -> int:
    from hpsearch.studies.schema import Experiment

    storage = open_storage(url, create=True)
    for i, space in enumerate(spaces):
        create_studies(
            storage,
            Experiment(
                archs=("rnn",),
                budgets=(300 + 100 * i,),
                depths=(1,),
                trials=2,
                seed=3,
                space={"max_steps": "30", "b": "100:300", **space},
            ),
        )
    return Worker(storage, find_records(storage, None), device="cpu").auto_batch()


@pytest.mark.parametrize(
    ("spaces", "k"),
    [
        (({"batch_size": "16:64"},), CPU_MINIBATCH_BATCH),  # searched
        (({"batch_size": "32"},), CPU_MINIBATCH_BATCH),  # fixed
        (({"batch_size": "16,32"},), CPU_MINIBATCH_BATCH),  # a choice of numbers
        (({},), 1),  # full batch, the default
        (({"batch_size": "full,32"},), 1),  # some trials full batch
        (({"batch_size": "16:64"}, {}), 1),  # a second study full batch
    ],
)
def test_auto_batch_on_cpu(sqlite_url, spaces, k):
    assert CPU_MINIBATCH_BATCH > 1
    assert _auto(sqlite_url, *spaces) == k


def test_minibatch_search_runs_batched_on_cpu(sqlite_url):
    """A search of minibatch trials of mixed batch sizes and b, through the batched
    executor at --batch auto's K: every trial completes (batches grow past their trials and
    have empty slots)."""
    from hpsearch.studies.schema import Experiment

    storage = open_storage(sqlite_url, create=True)
    create_studies(
        storage,
        Experiment(
            archs=("rnn",),
            budgets=(300,),
            depths=(1,),
            trials=9,
            seed=3,
            space={"max_steps": "30", "b": "100:300", "batch_size": "16:64"},
        ),
    )
    worker = Worker(storage, find_records(storage, None), device="cpu")
    report = worker.run(batch=worker.auto_batch())
    assert report.complete == 9 and report.failed == 0
