import multiprocessing
import time
from pathlib import Path

import pytest

from storage import open_storage, trial_slot


def _hold(url: str, log: str, tag: str) -> None:
    storage = open_storage(url)
    for _ in range(3):
        with trial_slot(storage, "study"):
            with open(log, "a") as f:
                f.write(f"{tag}+\n")
            time.sleep(0.05)
            with open(log, "a") as f:
                f.write(f"{tag}-\n")


def _check_exclusive(url: str, tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hold, args=(url, log, t)) for t in "abc"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = Path(log).read_text().split()
    assert len(lines) == 18
    # Every enter is followed by the same worker's exit: no two holders at once.
    for enter, leave in zip(lines[::2], lines[1::2], strict=True):
        assert enter.endswith("+") and leave == enter[0] + "-"


def test_sqlite_slot_is_exclusive_across_processes(sqlite_url: str, tmp_path: Path):
    open_storage(sqlite_url, create=True)
    _check_exclusive(sqlite_url, tmp_path)


@pytest.mark.postgres
def test_postgres_slot_is_exclusive_across_processes(postgres_url: str, tmp_path: Path):
    open_storage(postgres_url, create=True).engine.dispose()
    _check_exclusive(postgres_url, tmp_path)
