"""A worker's view of its searches while they run: on a terminal, one progress bar (trials
done of target in every study it works on, the best value per parameter where a task has
one, and the trials per hour of this machine's workers); off a terminal nothing here, since
each worker logs one line per trial.

`worker --processes N` draws one bar for the whole machine: the parent draws it and the
children draw none. Each child writes a line to a pipe the parent gave it (its descriptor
in FEED_ENV) for every trial it ends, and the parent counts those lines; the bar's done and
best come from the storage, so they hold every worker's trials, here or elsewhere. The
children's log lines pass through the parent too, which writes them above its bar: N bars,
or a bar and other processes' lines, on one terminal overwrite each other.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import IO, Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from hpsearch.results.rows import best_trial
from hpsearch.studies.records import StudyRecord
from objectives.tasks.description import TaskDescription, describe

# In a child of --processes whose parent draws the bar: the descriptor it writes to.
FEED_ENV = "HPSEARCH_PROGRESS_FD"


def task_description(task: str) -> TaskDescription | None:
    """The task's description; None for a task registered without one (a test's task), which
    the worker then shows by its plain value."""
    try:
        return describe(task)
    except ValueError:
        return None


class ProgressBar:
    """One bar over `records` (on stderr, or `file`), drawn where `enabled` (default: stderr
    is a terminal and no parent draws it); `update` counts a trial this machine ended."""

    def __init__(
        self,
        storage: optuna.storages.BaseStorage,
        records: list[StudyRecord],
        enabled: bool | None = None,
        file: IO[str] | None = None,
    ) -> None:
        self.storage = storage
        self.records = records
        feed = os.environ.get(FEED_ENV)
        self.feed = int(feed) if feed else None  # a parent draws: write to it instead
        self.file = file if file is not None else sys.stderr
        if enabled is None:
            enabled = self.feed is None and self.file.isatty()
        self.enabled = enabled
        self.started = time.monotonic()
        self.mine = 0
        self.bar: tqdm | None = None
        self._redirect: Any = None
        self._lock = threading.Lock()
        # The tasks whose value per parameter is the bar's "best" (bits per parameter).
        self._described = {r.name: task_description(r.task) for r in records}

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
                file=self.file,
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
        """A trial ended here (in this process, or in a child that fed the line)."""
        with self._lock:
            self.mine += 1
            if self.feed is not None:
                try:
                    os.write(self.feed, b"\n")
                except OSError:
                    self.feed = None  # the parent is gone: nobody draws
            if self.bar is not None:
                self._refresh()

    def follow(self, lines: Iterable[Any]) -> None:
        """Count one ended trial per line of a child's feed, until it closes (in a thread)."""
        for _ in lines:
            self.update()

    def write(self, line: str) -> None:
        """A line of a child's log, written above the bar."""
        text = line.rstrip("\n")
        if self.bar is not None:
            self.bar.write(text, file=self.file)
        else:
            print(text, file=self.file, flush=True)

    def _refresh(self) -> None:
        assert self.bar is not None
        done, best, metric = 0, None, ""
        for record in self.records:
            study_id = self.storage.get_study_id_from_name(record.name)
            trials = self.storage.get_all_trials(
                study_id, deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
            )
            done += len(trials)
            description = self._described[record.name]
            if description is None or not description.per_param:
                continue
            # The best trial of each network size (a study's depth), by the one rule of
            # the results; pruned trials count as done, but their values are not results.
            by_size: dict[int, list[FrozenTrial]] = {}
            for t in trials:
                num_params = t.user_attrs.get("num_params")
                if t.state == TrialState.COMPLETE and t.value is not None:
                    if isinstance(num_params, int) and num_params > 0:
                        by_size.setdefault(num_params, []).append(t)
            for num_params, sized in by_size.items():
                value = best_trial(sized).value
                assert value is not None
                if best is None or value / num_params > best:
                    best, metric = value / num_params, description.metric
        hours = max(time.monotonic() - self.started, 1e-9) / 3600
        self.bar.n = done
        self.bar.set_postfix_str(
            ("" if best is None else f"best {best:.3f} {metric}/param, ")
            + f"{self.mine / hours:.0f} trials/h here"
        )
