"""The worker loop, one for every way of training: claim trials while the executor has room,
train, tell each trial as it ends, repeat, until the worker's own count or every study's
target is reached. Many workers (processes, machines) share the studies.

Trials go through ask-and-tell and the trial lifecycle of `storage.lifecycle`: a slot lock
makes "count, then ask" atomic across workers, so together they stop at exactly the target;
heartbeats (recorded by this worker for every trial it holds) let a dead worker's trial go
stale, be failed and be retried with the same parameters by whoever claims next. How the held
trials are trained (one at a time, or batched) is the executor's business
(`hpsearch.worker.executors`); the failure cap, the retry rule, the interrupt handler and the count
of `--n-trials` are this loop's, once.

Beside the training, a proposer thread (`hpsearch.worker.proposer`) keeps each gp-batch
study's queue of proposals one batch deep, so that a claim rarely waits for a GP fit; the loop
nudges it after each claim and stops it when it stops claiming. What the worker waited for
(`hpsearch.worker.waits`: empty executor slots while its studies had room, claims waiting
for proposals) is logged when it ends and stored in its studies for `hpsearch status`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import optuna

from hpsearch.errors import HpsearchError
from hpsearch.search import proposals
from hpsearch.search.proposals import ClaimWaits, ProposalQueue
from hpsearch.search.pruners import make_pruner
from hpsearch.search.samplers import make_sampler
from hpsearch.studies.records import StudyRecord
from hpsearch.worker.executors import (
    BatchedExecutor,
    Ended,
    Executor,
    Failed,
    Held,
    Outcome,
    SerialExecutor,
    auto_batch,
    checkpoint_steps,
    describe_error,
)
from hpsearch.worker.progress import ProgressBar, task_description
from hpsearch.worker.proposer import AheadProposer
from hpsearch.worker.waits import SlotClock, WaitRecorder, summary
from objectives.tasks.registry import Task, TrialResult, get_task
from storage import Heartbeat, HeartbeatPolicy, retry_transient
from storage.lifecycle import StudyTrials

logger = logging.getLogger(__name__)

# Trials in a row that fail (an error in training, or a trial that cannot join a batch) before
# the worker gives up: something is wrong beyond one trial.
MAX_FAILURES_IN_A_ROW = 3
# How often a worker with nothing left to claim looks again while others still run trials
# (one of them may die, and its trial come back as a retry).
WAIT_POLL_SECONDS = 1.0
# Least time between two refreshes of the dashboard notes by one worker.
NOTE_SECONDS = 60.0


def resolve_device(name: str) -> str:
    """auto: cuda when present, else cpu. Asking for cuda where there is none is an error."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise HpsearchError("--device cuda: no CUDA device is available here")
    if name not in ("cpu", "cuda"):
        raise HpsearchError(f"--device {name!r}: choose auto, cpu or cuda")
    return name


def trial_seed(study_seed: int, trial_number: int) -> int:
    """The seed of a trial's data set and initial weights: fixed by study seed and number."""
    return (study_seed * 1_000_003 + trial_number * 7_919) % (2**31 - 1)


@dataclass
class _Study:
    record: StudyRecord
    trials: StudyTrials
    settings: Any
    task: Task

    @property
    def queue(self) -> ProposalQueue:
        """The study's queue of proposals (gp-batch), over its trials."""
        return ProposalQueue(self.trials)


@dataclass
class WorkerReport:
    """What this worker did: trials it completed, pruned and failed (interrupted ones are none
    of these)."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0
    failing: int = 0  # failed since the last success

    @property
    def claimed(self) -> int:
        return self.complete + self.pruned + self.failed


class Worker:
    def __init__(
        self,
        storage: optuna.storages.RDBStorage,
        records: list[StudyRecord],
        *,
        device: str,
        seed: int | None = None,
        heartbeat: HeartbeatPolicy | None = None,
        ahead: bool = True,
    ) -> None:
        """`ahead`: propose for gp-batch studies ahead of need, in a thread beside the
        training (`hpsearch.worker.proposer`); False leaves it to the claims (to compare)."""
        if not records:
            raise HpsearchError("no studies to work on: create some with 'hpsearch create'")
        self.storage = storage
        self.device = device
        self.policy = heartbeat or HeartbeatPolicy()
        # Workers must not share a sampler seed unless told to (--seed).
        self.seed = seed if seed is not None else secrets.randbelow(2**31)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.studies: list[_Study] = []
        for index, record in enumerate(records):
            task = get_task(record.task)
            sampler = make_sampler(record.sampler, (self.seed + index) % 2**31)
            pruner = make_pruner(record.pruner, checkpoint_steps(task) or 1)
            study = optuna.load_study(
                study_name=record.name, storage=storage, sampler=sampler, pruner=pruner
            )
            trials = StudyTrials(storage, study, record.target, self.policy.max_retry)
            settings = task.study_from_attrs(record.attrs)
            self.studies.append(_Study(record, trials, settings, task))
        self._by_name = {entry.record.name: entry for entry in self.studies}
        self._next = 0
        self._best_seen: dict[str, float] = {}
        self._noted = -NOTE_SECONDS
        self._stale_notes = False
        self.ahead = ahead
        # What this worker's claims waited for proposals, per study; and, once it runs, its
        # executor's empty slots and the proposer (for tests and the log).
        self.waits = {entry.record.name: ClaimWaits() for entry in self.studies}
        self.slots = SlotClock()
        self.proposer: AheadProposer | None = None

    def auto_batch(self) -> int:
        """K for `--batch auto` on this worker's device and studies."""
        return auto_batch([(e.task, e.settings) for e in self.studies], self.device)

    def executor(self, batch: int, tf32: str = "auto") -> Executor:
        """One trial at a time (batch 1), or up to `batch` trained together."""
        if batch == 1:
            return SerialExecutor(self.device)
        return BatchedExecutor(batch, self.device, tf32, [e.task for e in self.studies])

    def run(self, n_trials: int | None = None, batch: int = 1, tf32: str = "auto") -> WorkerReport:
        """Run trials until `n_trials` claimed by this worker, or every study's target; with
        batch > 1, train up to `batch` trials at once (tasks that support it), with TF32
        matmuls on a GPU per `tf32` (auto, on or off)."""
        executor = self.executor(batch, tf32)
        report = WorkerReport()
        self.slots = slots = SlotClock()
        recorder = WaitRecorder(
            self.storage, {e.record.name: e.trials.study for e in self.studies}, self.name
        )

        def wanted() -> bool:
            return n_trials is None or report.claimed + len(executor.held()) < n_trials

        try:
            with (
                Heartbeat(self.storage, self.policy.interval, self.sweep) as heartbeat,
                ProgressBar(self.storage, [e.record for e in self.studies]) as progress,
                self._proposing(batch) as proposer,
            ):
                try:
                    while True:
                        room = True  # whether the studies had room at the last claim
                        if executor.room > 0 and wanted():
                            slots.empty()
                        while executor.room > 0 and wanted():
                            more = executor.room
                            if n_trials is not None:
                                more = min(more, n_trials - report.claimed - len(executor.held()))
                            claimed = self.claim_next(heartbeat, more)
                            if proposer is not None:
                                proposer.nudge()
                            if not claimed:
                                room = False
                                break
                            for held in claimed:
                                try:  # a trial that cannot be taken (out of memory) fails alone
                                    executor.submit(held)
                                except Exception as e:
                                    failed = Failed(held, describe_error(e))
                                    self._tell([failed], heartbeat, report, progress)
                        slots.filled(room)
                        if proposer is not None and not wanted():
                            proposer.finish()  # no more claims: no more fits for them
                        if not executor.held():
                            if wanted() and retry_transient(
                                self._others_running, "checking other workers"
                            ):
                                time.sleep(WAIT_POLL_SECONDS)
                                continue
                            break
                        outcomes = executor.advance(self._judge)
                        if executor.room > 0 and wanted():
                            slots.empty()  # telling, then claiming, with slots empty
                        self._tell(outcomes, heartbeat, report, progress)
                        recorder.maybe(slots, self.waits)
                except KeyboardInterrupt:
                    self._stop(executor.held(), heartbeat)
                    raise
        finally:
            slots.filled()
            recorder.write(slots, self.waits)
            logger.info("worker %s waits: %s", self.name, summary(slots, self.waits).describe())
        self._refresh_note(None)
        return report

    @contextlib.contextmanager
    def _proposing(self, batch: int) -> Iterator[AheadProposer | None]:
        """The proposer of this worker's gp-batch studies, running for the body (None when
        it has none, or `ahead` is off), one batch deep: the sampler's q, or `batch`."""
        if not self.ahead:
            yield None
            return
        proposer = AheadProposer(
            self.storage,
            [(e.record.sampler, e.trials) for e in self.studies],
            self.name,
            depth=batch,
            seed=(self.seed + len(self.studies)) % 2**31,
        )
        if not proposer:
            yield None
            return
        self.proposer = proposer
        with proposer:
            yield proposer

    # -- claiming --------------------------------------------------------------------------

    def claim_next(self, heartbeat: Heartbeat, n: int = 1) -> list[Held]:
        """Up to `n` new trials, in one go, from the next study (in rotation) that still has
        room; none when every study is full. A study whose next proposals another worker is
        fitting is passed over while another study has trials to give, and waited for when
        none has."""
        count = len(self.studies)
        # (study index, whether to wait for another worker's fit); a passed-over study is
        # visited once more at the end, waiting (the loop sees what is appended).
        plan = [((self._next + offset) % count, count == 1) for offset in range(count)]
        deferred = False
        for index, wait in plan:
            entry = self.studies[index]

            def prepare(trial: optuna.trial.Trial, entry: _Study = entry) -> Any:
                seed = trial_seed(entry.record.seed, trial.number)
                return entry.task.suggest(trial, entry.settings, seed)

            # The expensive part of proposing (gp-batch's GP fit) happens outside the slot lock,
            # by one worker at a time: the proposers, ahead of need, or a claim that finds the
            # study's queue short (`hpsearch.search.proposals`); None: passed over while
            # another worker fits.
            claims = proposals.claim(
                entry.queue,
                heartbeat,
                self.name,
                prepare,
                n,
                wait=wait,
                waits=self.waits[entry.record.name],
            )
            if claims:
                self._next = (index + 1) % count
                return [Held(entry.record.name, entry.task, c.prepared, c) for c in claims]
            if claims is None and not deferred:
                plan.append((index, True))
                deferred = True
        return []

    def sweep(self) -> None:
        """Fail (and queue retries of) other workers' stale and orphaned trials."""
        for entry in self.studies:
            entry.trials.sweep()

    def _others_running(self) -> bool:
        """Whether another worker still holds a trial that may yet fail and need a retry."""
        return any([entry.trials.others_running() for entry in self.studies])

    def _judge(self, held: Held, step: int, value: float) -> bool:
        """A checkpoint: report the trial's best value so far; whether it goes on (the study's
        pruner may stop it)."""
        entry = self._by_name[held.study]
        entry.trials.report(held.claim, value, step)
        if entry.record.pruner == "none":
            return True
        return not entry.trials.should_prune(held.claim)

    # -- telling ---------------------------------------------------------------------------

    def _tell(
        self,
        outcomes: list[Outcome],
        heartbeat: Heartbeat,
        report: WorkerReport,
        progress: ProgressBar,
    ) -> None:
        """Store each ended trial: its result and value, or its error. Gives up after
        MAX_FAILURES_IN_A_ROW failed trials with no success between them."""
        for outcome in outcomes:
            held = outcome.held
            entry = self._by_name[held.study]
            if isinstance(outcome, Ended):
                result = outcome.result
                attrs = {**result.to_attrs(), "config": held.config.to_attrs(), "worker": self.name}
                if outcome.pruned:
                    entry.trials.prune(held.claim, heartbeat, result.value, attrs)
                    report.pruned += 1
                else:
                    entry.trials.complete(held.claim, heartbeat, result.value, attrs)
                    self._refresh_note(entry, result.value)
                    report.complete += 1
                self._log(
                    entry.record.task,
                    held.study,
                    held.claim.number,
                    result,
                    outcome.pruned,
                    held.claim.trial.params,
                )
                report.failing = 0
            else:
                entry.trials.fail(held.claim, heartbeat, {"error": outcome.error})
                logger.error("%s #%d failed: %s", held.study, held.claim.number, outcome.error)
                report.failed += 1
                report.failing += 1
            progress.update()
        if report.failing >= MAX_FAILURES_IN_A_ROW:
            raise HpsearchError(f"{report.failing} trials in a row failed; see the log above")

    def _stop(self, held: list[Held], heartbeat: Heartbeat) -> None:
        """Stopped (Ctrl-C, SIGTERM from `docker compose stop`): fail every held trial and
        queue its parameters again, as for a crashed worker, with further signals held off."""
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            for h in held:
                self._by_name[h.study].trials.stop(h.claim, heartbeat, {"interrupted": True})
            if held:
                logger.warning("interrupted: %d trial(s) failed and queued again", len(held))
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _refresh_note(self, entry: _Study | None, value: float = 0.0) -> None:
        """Keep the dashboard's notes and figure current for this worker's studies: on a new
        best, at most once a minute per worker (the figure reads every study's trials), and
        once more when the worker finishes (entry None). Never fails a trial."""
        # Notes are on for studies of per-parameter tasks (their note carries the figure);
        # without such a study the notes module (and its plotting) is never imported.
        names = [
            e.record.name
            for e in self.studies
            if getattr(task_description(e.record.task), "per_param", False)
        ]
        if not names:
            return
        if entry is not None:
            name = entry.record.name
            improved = value > self._best_seen.get(name, float("-inf"))
            self._best_seen[name] = max(value, self._best_seen.get(name, float("-inf")))
            now = time.monotonic()
            if not improved or now - self._noted < NOTE_SECONDS:
                self._stale_notes = self._stale_notes or improved
                return
            self._noted = now
        elif not self._stale_notes and self._noted >= 0:
            return
        self._stale_notes = False
        try:
            from hpsearch.dashboard.notes import publish

            retry_transient(
                lambda: publish(self.storage, names), "updating the dashboard notes", deadline=60
            )
        except Exception as e:
            logger.warning("could not update the dashboard notes: %s", e)

    @staticmethod
    def _log(
        task: str,
        name: str,
        number: int,
        result: TrialResult,
        pruned: bool = False,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        """One line per trial: its value as the task prints it, per parameter where that
        means something, the trial's searched parameters (depth, b, ...: what a reader of the
        log compares trials by), its steps and seconds."""
        description = task_description(task)
        attrs = result.to_attrs()
        how = (" DIVERGED" if result.diverged else "") + (" PRUNED" if pruned else "")
        per_param = ""
        num_params = attrs.get("num_params")
        if description and description.per_param and isinstance(num_params, int) and num_params:
            per_param = f" ({result.value / num_params:.2f} {description.metric}/param)"
        steps = f" steps={attrs['steps']}" if "steps" in attrs else ""
        searched = "".join(
            f" {k}={v:.3g}" if isinstance(v, float) else f" {k}={v}"
            for k, v in (params or {}).items()
        )
        logger.info(
            "%s #%d: %s%s%s%s%s in %.2fs",
            name,
            number,
            f"value {result.value:.6g}"
            if description is None
            else description.format_value(result.value),
            per_param,
            searched,
            steps,
            how,
            attrs.get("seconds", float("nan")),
        )
