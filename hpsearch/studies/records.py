"""Studies in the storage: create them from an experiment, find and read them back."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from hpsearch.errors import HpsearchError, StudyNotFound
from hpsearch.search.pruners import check_pruner
from hpsearch.search.samplers import check_sampler
from hpsearch.search.warm import WARM_FROM_KEY, stored_warm_from
from hpsearch.studies.schema import Experiment
from hpsearch.studies.spelling import spell_attrs
from objectives.tasks.registry import StudySettings, get_task

logger = logging.getLogger(__name__)

# Study user attrs written by hpsearch besides the task's own settings.
TARGET_KEY = "target_trials"
SAMPLER_KEY = "sampler"
PRUNER_KEY = "pruner"
SEED_KEY = "seed"


@dataclass(frozen=True)
class StudyRecord:
    """A study as hpsearch sees it: Optuna's name and id, the task and its settings."""

    name: str
    task: str
    attrs: dict[str, Any]

    @property
    def target(self) -> int:
        return int(self.attrs[TARGET_KEY])

    @property
    def sampler(self) -> str:
        return str(self.attrs[SAMPLER_KEY])

    @property
    def pruner(self) -> str:
        """Studies made before pruning existed have none."""
        return str(self.attrs.get(PRUNER_KEY, "none"))

    @property
    def seed(self) -> int:
        return int(self.attrs[SEED_KEY])

    @property
    def warm_from(self) -> tuple[str, ...]:
        """Studies made before warm starts existed have none: ()."""
        return stored_warm_from(self.attrs)


def plan_studies(experiments: Sequence[Experiment]) -> list[tuple[Experiment, StudySettings]]:
    """Every study of the experiments (the variants of one file, say) with the experiment it
    belongs to, all validated; two studies of one name are an error."""
    plan = [(experiment, study) for experiment in experiments for study in experiment.studies()]
    seen: set[str] = set()
    for _, study in plan:
        if study.name in seen:
            raise HpsearchError(
                f"two studies would be named {study.name}: give each group a --tag of its own"
            )
        seen.add(study.name)
    return plan


@dataclass(frozen=True)
class Created:
    """What `create_studies` did with one study: made it (`created`), found it as asked
    (`unchanged`), or found it as asked but for its target, which it set (`retargeted`, from
    `target_before` to `target`)."""

    name: str
    action: str  # "created", "unchanged" or "retargeted"
    target: int
    target_before: int | None = None


def _spell(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def differences(
    record: StudyRecord, study: StudySettings, experiment: Experiment
) -> list[tuple[str, str, str]]:
    """(setting, stored, asked) for each setting but the target in which an existing study
    differs from the one `experiment` asks for. Both are read through the task's study class,
    so that a study stored in an older format compares by what it means."""
    stored = get_task(record.task).study_from_attrs(record.attrs).to_attrs()
    asked = study.to_attrs()
    found = []
    for key in dict.fromkeys([*stored, *asked]):
        if key == "space":
            for name in dict.fromkeys([*stored["space"], *asked["space"]]):
                old, new = stored["space"].get(name), asked["space"].get(name)
                if old != new:
                    found.append(
                        (
                            "depths" if name == "depth" else name,
                            "none" if old is None else spell_attrs(name, old),
                            "none" if new is None else spell_attrs(name, new),
                        )
                    )
        elif stored.get(key) != asked.get(key):
            found.append((key, _spell(stored.get(key)), _spell(asked.get(key))))
    for key, old, new in (
        ("sampler", record.sampler, experiment.sampler),
        ("pruner", record.pruner, experiment.pruner),
        ("seed", record.seed, record.seed if experiment.seed is None else experiment.seed),
        ("warm_from", _warm(record.warm_from), _warm(experiment.warm_from or ())),
    ):
        if old != new:
            found.append((key, str(old), str(new)))
    return found


def _warm(names: tuple[str, ...]) -> str:
    return ",".join(names) or "none"


def check_warm_from_names(
    plan: Sequence[tuple[Experiment, StudySettings]], existing: Sequence[str]
) -> None:
    """Every study named by a `warm_from` exists in the storage or is made by this plan."""
    known = {*existing, *(study.name for _, study in plan)}
    for experiment, study in plan:
        for name in experiment.warm_from or ():
            if name != "auto" and name not in known:
                raise HpsearchError(
                    f"--warm-from: no study named {name!r} (for {study.name}); studies here: "
                    + (", ".join(sorted(existing)) or "none")
                )
            if name == study.name:
                raise HpsearchError(f"--warm-from: {study.name} cannot warm from itself")


def create_studies(storage: optuna.storages.BaseStorage, *experiments: Experiment) -> list[Created]:
    """Create the studies of every experiment: one per (arch, budget) of a capacity
    experiment, one per (arch, units) of a per-unit one; say what was done with each.

    Every study's settings are validated before the first one is written. A study that
    exists already is left as it is if it has the settings asked for; if only its target
    differs, its target is set to the one asked for (`trials`, the one setting that may
    change: it says when the workers stop). If any existing study differs in anything else
    (sampler, depths, space, ...), nothing is written for any study and the error names
    every difference: a changed setting would not apply to the trials run already. An
    experiment without a seed takes one drawn at random here, the same for all of them (so
    variants compared with each other train on the same data), and keeps an existing
    study's seed.
    """
    plan = plan_studies(experiments)
    drawn = secrets.randbelow(2**31)
    existing = {s.study_name: s for s in storage.get_all_studies()}
    check_warm_from_names(plan, list(existing))
    refused = []
    for experiment, study in plan:
        if study.name not in existing:
            continue
        record = read_record(study.name, existing[study.name].user_attrs)
        if record is None:
            refused.append(f"{study.name} exists and was not made by hpsearch")
            continue
        found = differences(record, study, experiment)
        if found:
            refused.append(
                f"{study.name} exists with "
                + ", ".join(f"{what} {old}" for what, old, _ in found)
                + " (asked: "
                + ", ".join(new for _, _, new in found)
                + ")"
            )
    if refused:
        raise HpsearchError(
            "; ".join(refused) + "; only the target (trials) of an existing study can change: "
            "give the new settings a tag of their own"
        )
    out = []
    for experiment, study in plan:
        if study.name in existing:
            before = read_record(study.name, existing[study.name].user_attrs)
            assert before is not None
            if before.target == experiment.trials:
                out.append(Created(study.name, "unchanged", experiment.trials))
                continue
            study_id = storage.get_study_id_from_name(study.name)
            storage.set_study_user_attr(study_id, TARGET_KEY, experiment.trials)
            out.append(Created(study.name, "retargeted", experiment.trials, before.target))
            continue
        created = create_study(
            storage,
            study,
            trials=experiment.trials,
            sampler=experiment.sampler,
            pruner=experiment.pruner,
            seed=experiment.seed if experiment.seed is not None else drawn,
            warm_from=experiment.warm_from or (),
        )
        # Not created: another process made it a moment ago.
        out.append(Created(study.name, "created" if created else "unchanged", experiment.trials))
    return out


def create_study(
    storage: optuna.storages.BaseStorage,
    settings: StudySettings,
    *,
    trials: int,
    sampler: str,
    seed: int,
    pruner: str = "none",
    warm_from: tuple[str, ...] = (),
) -> bool:
    """Create one study of any task from its settings; False if it exists already. A study
    that warms from others (`hpsearch.search.warm`) stores them (WARM_FROM_KEY)."""
    check_sampler(sampler)
    check_pruner(pruner)
    attrs = {
        **settings.to_attrs(),
        TARGET_KEY: trials,
        SAMPLER_KEY: sampler,
        PRUNER_KEY: pruner,
        SEED_KEY: seed,
        **({WARM_FROM_KEY: list(warm_from)} if warm_from else {}),
    }
    return _create_one(storage, settings.name, attrs)


def _create_one(storage: optuna.storages.BaseStorage, name: str, attrs: dict[str, Any]) -> bool:
    try:
        study_id = storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], name)
    except optuna.exceptions.DuplicatedStudyError:
        return False  # another process created it a moment ago
    try:
        for key, value in attrs.items():
            storage.set_study_user_attr(study_id, key, value)
    except BaseException:
        # Never leave a half-written study behind.
        storage.delete_study(study_id)
        raise
    return True


def read_record(summary_name: str, attrs: dict[str, Any]) -> StudyRecord | None:
    task = attrs.get("task")
    if not isinstance(task, str) or TARGET_KEY not in attrs:
        return None
    return StudyRecord(name=summary_name, task=task, attrs=attrs)


def list_records(storage: optuna.storages.BaseStorage) -> list[StudyRecord]:
    """Every hpsearch study in the storage, by name."""
    records = []
    for frozen in storage.get_all_studies():
        record = read_record(frozen.study_name, frozen.user_attrs)
        if record is None:
            logger.debug("skipping study %s: not made by hpsearch", frozen.study_name)
            continue
        records.append(record)
    return sorted(records, key=lambda r: r.name)


def find_records(
    storage: optuna.storages.BaseStorage, names: list[str] | None
) -> list[StudyRecord]:
    """The named studies (all of them when names is None); a missing name is an error."""
    records = list_records(storage)
    if names is None:
        return records
    by_name = {r.name: r for r in records}
    missing = [n for n in names if n not in by_name]
    if missing:
        known = ", ".join(sorted(by_name)) or "none"
        raise StudyNotFound(f"no hpsearch study named {missing[0]!r}; studies here: {known}")
    return [by_name[n] for n in names]


def check_task(record: StudyRecord) -> None:
    try:
        get_task(record.task)
    except ValueError as e:
        raise HpsearchError(f"study {record.name}: {e}") from None
