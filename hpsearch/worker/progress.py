"""A worker's view of its searches while they run: on a terminal, a progress bar (trials
done of target, best bits per parameter, this worker's trials per hour); off a terminal
nothing here, since the worker logs one line per trial."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any

import optuna
from optuna.trial import TrialState
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from hpsearch.studies.records import StudyRecord


class ProgressBar:
    def __init__(
        self,
        storage: optuna.storages.BaseStorage,
        records: list[StudyRecord],
        enabled: bool | None = None,
    ) -> None:
        self.storage = storage
        self.records = records
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self.mine = 0
        self.bar: tqdm | None = None
        self._redirect: Any = None

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            target = sum(r.target for r in self.records)
            # Log lines go above the bar instead of through it.
            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()
            self.bar = tqdm(
                total=target,
                unit="trial",
                dynamic_ncols=True,
                file=sys.stderr,
                desc=self.records[0].name
                if len(self.records) == 1
                else f"{len(self.records)} studies",
                # done/target, elapsed, then our own rate: tqdm's would count the trials of
                # every worker as if this one had run them.
                bar_format="{desc}: {n_fmt}/{total_fmt} |{bar}| {elapsed}{postfix}",
            )
            self._refresh()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.bar is not None:
            self.bar.close()
            self._redirect.__exit__(exc_type, exc, tb)

    def update(self) -> None:
        self.mine += 1
        if self.bar is not None:
            self._refresh()

    def _refresh(self) -> None:
        assert self.bar is not None
        done, best = 0, None
        for record in self.records:
            study_id = self.storage.get_study_id_from_name(record.name)
            trials = self.storage.get_all_trials(
                study_id, deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
            )
            done += len(trials)
            for t in trials:
                if t.state != TrialState.COMPLETE:
                    continue  # pruned: counts as done, but its bits are not a result
                bpp = t.user_attrs.get("bits_per_param")
                if isinstance(bpp, int | float) and (best is None or bpp > best):
                    best = float(bpp)
        hours = max(time.monotonic() - self.started, 1e-9) / 3600
        self.bar.n = done
        self.bar.set_postfix_str(
            ("" if best is None else f"best {best:.3f} bits/param, ")
            + f"{self.mine / hours:.0f} trials/h here"
        )


# The old name, until tests/hpsearch/results/test_plots_notes.py imports ProgressBar.
Progress = ProgressBar
