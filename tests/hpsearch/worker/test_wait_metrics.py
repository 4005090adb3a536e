"""What a worker waits for (`hpsearch.worker.waits`, `hpsearch.results.waits`): empty executor
slots while the studies have room, and the claims' waits for proposals, stored per worker in
each study, summed over workers by `hpsearch status`, and logged when the worker ends."""

from __future__ import annotations

import json
import logging

import optuna
import pytest

from hpsearch.results.status import render_status, status_json, study_status
from hpsearch.results.waits import WAITS_PREFIX, Waits, study_waits
from hpsearch.search.proposals import ClaimWaits
from hpsearch.studies.records import find_records
from hpsearch.worker.loop import Worker
from hpsearch.worker.waits import SlotClock
from storage import open_storage
from tests.testing import calibration_study


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_slot_clock_counts_empty_slots_only_while_the_studies_have_room():
    clock = _Clock()
    slots = SlotClock(clock)
    slots.empty()
    clock.now += 2.0
    slots.empty()  # already empty: the interval goes on
    clock.now += 1.0
    slots.filled()  # 3 s
    clock.now += 10.0  # training, slots full
    slots.empty()
    clock.now += 4.0
    assert slots.seconds_now() == 7.0  # the interval under way counts
    slots.filled(room=False)  # every study was full: not charged
    clock.now += 1.0
    assert (slots.empty_seconds, slots.wall_seconds) == (3.0, 18.0)


def test_waits_are_summed_over_workers_and_bad_records_skipped():
    a = Waits(wall_seconds=10, empty_seconds=1, claims=4, waited_claims=1, wait_seconds=2.0)
    b = Waits(wall_seconds=30, empty_seconds=3, claims=6, waited_claims=0, wait_seconds=0.5)
    attrs = {
        WAITS_PREFIX + "a": a.to_attrs(),
        WAITS_PREFIX + "b": b.to_attrs(),
        WAITS_PREFIX + "old": {"wall": 1},
        "hpsearch:fitting": {"by": "a", "until": 0},
    }
    total = study_waits(attrs)
    assert total == Waits(40, 4, 10, 1, 2.5, workers=2)
    assert total.empty_fraction == pytest.approx(0.1) and total.mean_wait == 0.25
    assert study_waits({}) is None
    waits = ClaimWaits()
    waits.add(0.0)
    waits.add(1.5)
    waits.add(0.5, claimed=False)  # found the study full: its time counts, not the claim
    assert (waits.claims, waits.waited, waits.seconds, waits.mean) == (2, 1, 2.0, 1.0)
    for _ in range(5):  # claims that found nothing never count as claims that waited
        waits.add(0.25, claimed=False)
    assert (waits.claims, waits.waited) == (2, 1) and waits.seconds == pytest.approx(3.25)


@pytest.mark.parametrize("ahead", [False, True])
def test_a_worker_records_its_waits_and_status_shows_them(sqlite_url, caplog, ahead):
    study = calibration_study(sqlite_url, "waits", trials=14)
    storage = open_storage(sqlite_url)
    worker = Worker(storage, find_records(storage, None), device="cpu", seed=0, ahead=ahead)
    with caplog.at_level(logging.INFO, logger="hpsearch.worker.loop"):
        worker.run()
    stored = storage.get_study_system_attrs(study._study_id)[WAITS_PREFIX + worker.name]
    waits = Waits.from_attrs(stored)
    assert waits.claims == 14 == worker.waits[study.study_name].claims
    assert 0 < waits.empty_seconds <= waits.wall_seconds
    assert waits.wait_seconds == pytest.approx(worker.waits[study.study_name].seconds)
    if not ahead:
        # Past the start-up the claims fit themselves: they waited for it.
        assert waits.waited_claims >= 1 and waits.wait_seconds > 0
    (line,) = [r.getMessage() for r in caplog.records if " waits: " in r.getMessage()]
    assert f"{waits.waited_claims} of 14 claims waited" in line
    (row,) = study_status(storage)
    assert row.claims == 14
    assert row.empty_slot_fraction == pytest.approx(waits.empty_fraction)
    (listed,) = json.loads(status_json([row]))
    assert listed["claim_wait_seconds"] == pytest.approx(waits.wait_seconds)
    columns = render_status([row]).splitlines()[1].split()
    assert columns[-2:] == [
        f"{100 * waits.empty_fraction:.1f}%",
        f"{waits.wait_seconds:.1f}s/{waits.mean_wait:.2f}s",
    ]


def test_a_study_no_worker_has_run_shows_no_waits(sqlite_url):
    calibration_study(sqlite_url, "idle", trials=3)
    (row,) = study_status(optuna.storages.RDBStorage(sqlite_url))
    assert row.empty_slot_fraction is None
    assert render_status([row]).splitlines()[1].split()[-2:] == ["-", "-"]
