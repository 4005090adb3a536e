"""Archives of whole studies: every trial with everything needed to rebuild it, as JSON lines.

An archive is a text file of JSON lines (gzip-compressed when its name ends in .gz), for each
study one study line and then its trials in number order, one line each:

    {"archive": 1, "kind": "study", "name": ..., "directions": ["MAXIMIZE"],
     "user_attrs": {...}, "system_attrs": {...}, "trials": N}
    {"kind": "trial", "study": ..., "number": 0, "state": "COMPLETE",
     "params": {...}, "distributions": {name: Optuna's distribution JSON, parsed},
     "values": [...] or null, "intermediate_values": {"step": value},
     "user_attrs": {...}, "system_attrs": {...},
     "datetime_start": ISO time or null, "datetime_complete": ISO time or null}

and last an end line, {"kind": "end", "studies": N}, so that a file cut short anywhere, even
between two studies, is found out.

The study's user attrs are its hpsearch settings (task, space, target, sampler, pruner, seed:
`hpsearch.studies.records`); its system attrs hold Optuna's and the dashboard's (metric names,
notes). A trial's system attrs hold a queued proposal's fixed parameters and mark, and a
retry's history, so a study rebuilt from its lines resumes with its target, sampler, queue and
retries intact. Left out: the storage's own ids (study and trial ids belong to one database)
and the gp-batch fit lease (a lock held for a minute, not a setting). Keys are sorted and the
gzip header has no time stamp, so the same studies always give the same bytes, and exporting
imported studies gives the same file.

Importing (`plan_import`, then `write_import`; `import_archive` does both):

- The whole file is read and checked before anything is written, and so is every study
  against the storage: a clash anywhere writes nothing anywhere.
- A new study is created with the archive's directions, attrs and trials (each keeping its
  number, state, parameters and distributions, values, attrs, intermediate values and
  times). Its user attrs are written last, so `hpsearch worker --all` does not take up a
  study half imported.
- A study of the same name already in the storage must have the same directions and user
  attrs (its settings, the target included), else the import is refused. Its trials are
  identified by number within the study: a trial the storage holds is kept as stored (it may
  have moved on since the archive was made) if it is the same trial (the parameters both
  have agree, else the two runs went separate ways and the import is refused); the
  archive's trials beyond the storage's last are added in order. So importing one archive
  twice adds nothing, and a newer archive of the same run adds only its new trials. Stop the
  workers of a study before adding trials to it: a trial a worker adds meanwhile takes a
  number the archive's next trial needed, and the import stops with an error.
- A RUNNING trial in an archive is a stale one (its worker ran against another database). It
  is imported RUNNING, with one heartbeat recorded at the import, so that the workers'
  stale-trial sweep (`storage.lifecycle`) fails it once their heartbeat grace has passed and
  queues a retry of its parameters, within the retry limit, as for any worker that died.
  Until then it holds its place of the target, as it did where it ran; and the round trip
  stays exact.
"""

from __future__ import annotations

import datetime
import gzip
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import optuna
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpsearch.errors import HpsearchError
from hpsearch.search.optuna_compat import trial_id
from hpsearch.search.proposals import FIT_ATTR

logger = logging.getLogger(__name__)

# The version of the line format, in every study line.
ARCHIVE_VERSION = 1
# Study system attrs that are runtime state of one storage, not part of the study.
TRANSIENT_STUDY_ATTRS = frozenset({FIT_ATTR})
GZIP_MAGIC = b"\x1f\x8b"


class ArchiveError(HpsearchError):
    """An archive that cannot be read, or cannot be imported into this storage."""


@dataclass(frozen=True)
class ArchivedStudy:
    """One study of an archive: its name, directions, attrs and trials (by number, from 0)."""

    name: str
    directions: tuple[StudyDirection, ...]
    user_attrs: dict[str, Any]
    system_attrs: dict[str, Any]
    trials: tuple[FrozenTrial, ...]


# -- writing ---------------------------------------------------------------------------------


def _time(value: datetime.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dumps(line: dict[str, Any]) -> str:
    # NaN and infinities (a diverged trial's reports) are written as Python's json reads them.
    return json.dumps(line, sort_keys=True, allow_nan=True)


def study_line(storage: optuna.storages.BaseStorage, study_id: int) -> dict[str, Any]:
    """The study's line, without its trial count."""
    system_attrs = storage.get_study_system_attrs(study_id)
    return {
        "archive": ARCHIVE_VERSION,
        "kind": "study",
        "name": storage.get_study_name_from_id(study_id),
        "directions": [d.name for d in storage.get_study_directions(study_id)],
        "user_attrs": storage.get_study_user_attrs(study_id),
        "system_attrs": {k: v for k, v in system_attrs.items() if k not in TRANSIENT_STUDY_ATTRS},
    }


def trial_line(study: str, trial: FrozenTrial) -> dict[str, Any]:
    """One trial's line: everything `create_new_trial` needs to make it again."""
    return {
        "kind": "trial",
        "study": study,
        "number": trial.number,
        "state": trial.state.name,
        "params": dict(trial.params),
        "distributions": {
            name: json.loads(distribution_to_json(d)) for name, d in trial.distributions.items()
        },
        "values": None if trial.values is None else list(trial.values),
        "intermediate_values": {str(k): v for k, v in trial.intermediate_values.items()},
        "user_attrs": dict(trial.user_attrs),
        "system_attrs": dict(trial.system_attrs),
        "datetime_start": _time(trial.datetime_start),
        "datetime_complete": _time(trial.datetime_complete),
    }


def archive_lines(storage: optuna.storages.BaseStorage, names: Sequence[str]) -> Iterator[str]:
    """The archive of the named studies (sorted by name), line by line, each with its end."""
    for name in sorted(names):
        study_id = storage.get_study_id_from_name(name)
        trials = sorted(storage.get_all_trials(study_id, deepcopy=False), key=lambda t: t.number)
        yield _dumps({**study_line(storage, study_id), "trials": len(trials)}) + "\n"
        for trial in trials:
            yield _dumps(trial_line(name, trial)) + "\n"
    yield _dumps({"kind": "end", "studies": len(names)}) + "\n"


def write_archive(lines: Iterator[str], path: Path) -> None:
    """Write an archive to `path`, gzip-compressed (with no time stamp, so the same lines give
    the same bytes) when its name ends in .gz."""
    with path.open("wb") as raw:
        if path.name.endswith(".gz"):
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed:
                for line in lines:
                    packed.write(line.encode())
        else:
            for line in lines:
                raw.write(line.encode())


# -- reading ---------------------------------------------------------------------------------


def read_archive(path: Path) -> list[ArchivedStudy]:
    """Every study of the archive at `path` (plain or gzip-compressed, whatever its name),
    checked line by line; any fault is an ArchiveError naming the file and line."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ArchiveError(f"cannot read {path}: {e.strerror}") from None
    if data.startswith(GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise ArchiveError(f"{path}: a broken or truncated gzip file ({e})") from None
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise ArchiveError(f"{path}: not an hpsearch archive (not text)") from None
    return parse_archive(text.splitlines(), str(path))


def parse_archive(lines: Sequence[str], source: str) -> list[ArchivedStudy]:
    """The studies of an archive's lines; `source` names the file in errors."""
    studies: list[ArchivedStudy] = []
    head: dict[str, Any] | None = None
    trials: list[FrozenTrial] = []
    declared = 0
    ended = False

    def close(at: int) -> None:
        if head is None:
            return
        if len(trials) != declared:
            raise ArchiveError(
                f"{source}: truncated: study {head['name']} has {len(trials)} of its "
                f"{declared} trials (line {at})"
            )
        studies.append(
            ArchivedStudy(
                name=head["name"],
                directions=tuple(head["directions"]),
                user_attrs=head["user_attrs"],
                system_attrs=head["system_attrs"],
                trials=tuple(trials),
            )
        )

    for at, text in enumerate(lines, start=1):
        where = f"{source} line {at}"
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except ValueError:
            what = "truncated, or not" if at == len(lines) and at > 1 else "not"
            raise ArchiveError(f"{where}: {what} an hpsearch archive (not JSON)") from None
        if not isinstance(line, dict) or line.get("kind") not in ("study", "trial", "end"):
            raise ArchiveError(f"{where}: not an hpsearch archive (no study or trial line)")
        if ended:
            raise ArchiveError(f"{where}: a line after the archive's end line")
        if line["kind"] == "end":
            close(at)
            head, ended = None, True
            if line.get("studies") != len(studies):
                raise ArchiveError(
                    f"{where}: the end line counts {line.get('studies')!r} studies, "
                    f"the file holds {len(studies)}"
                )
            continue
        if line["kind"] == "study":
            close(at)
            head, declared, trials = _study_head(line, where), int(line["trials"]), []
            if any(s.name == head["name"] for s in studies):
                raise ArchiveError(f"{where}: study {head['name']} comes twice")
            continue
        if head is None:
            raise ArchiveError(f"{where}: a trial line before any study line")
        if line.get("study") != head["name"]:
            raise ArchiveError(f"{where}: a trial of {line.get('study')!r} in {head['name']}")
        trial = _trial(line, where)
        if trial.number != len(trials):
            raise ArchiveError(f"{where}: trial #{trial.number} where #{len(trials)} was due")
        trials.append(trial)
    if not ended:
        if head is None and not studies:
            raise ArchiveError(f"{source}: not an hpsearch archive (no study line)")
        close(len(lines))  # a study cut short says so
        raise ArchiveError(f"{source}: truncated (no end line after its last study)")
    if not studies:
        raise ArchiveError(f"{source}: an archive of no studies")
    return studies


def _study_head(line: dict[str, Any], where: str) -> dict[str, Any]:
    version = line.get("archive")
    if version != ARCHIVE_VERSION:
        raise ArchiveError(
            f"{where}: archive format {version!r}; this version reads {ARCHIVE_VERSION}"
        )
    try:
        name = line["name"]
        directions = [StudyDirection[d] for d in line["directions"]]
        user_attrs, system_attrs = line["user_attrs"], line["system_attrs"]
        count = line["trials"]
    except (KeyError, TypeError) as e:
        raise ArchiveError(f"{where}: a study line without a valid {e}") from None
    if not isinstance(name, str) or not name or not directions:
        raise ArchiveError(f"{where}: a study line needs a name and at least one direction")
    if not isinstance(user_attrs, dict) or not isinstance(system_attrs, dict):
        raise ArchiveError(f"{where}: a study's attrs must be objects")
    if not isinstance(count, int) or count < 0:
        raise ArchiveError(f"{where}: a study's trial count must be a whole number")
    return {
        "name": name,
        "directions": directions,
        "user_attrs": user_attrs,
        "system_attrs": system_attrs,
    }


def _datetime(text: Any, what: str) -> datetime.datetime | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"{what} must be an ISO time or null")
    return datetime.datetime.fromisoformat(text)


def _trial(line: dict[str, Any], where: str) -> FrozenTrial:
    """A trial line as the FrozenTrial it describes, checked as Optuna checks a new trial."""
    try:
        state = TrialState[line["state"]]
        values = line["values"]
        distributions = {
            name: json_to_distribution(json.dumps(d)) for name, d in line["distributions"].items()
        }
        intermediate = {int(step): float(v) for step, v in line["intermediate_values"].items()}
        trial = optuna.trial.create_trial(
            state=state,
            values=None if values is None else [float(v) for v in values],
            params=line["params"],
            distributions=distributions,
            user_attrs=line["user_attrs"],
            system_attrs=line["system_attrs"],
            intermediate_values=intermediate,
        )
        number = line["number"]
        if not isinstance(number, int) or number < 0:
            raise ValueError("the trial number must be a whole number")
        trial.number = number
        trial.datetime_start = _datetime(line["datetime_start"], "datetime_start")
        trial.datetime_complete = _datetime(line["datetime_complete"], "datetime_complete")
    except KeyError as e:
        raise ArchiveError(f"{where}: a trial line without {e}") from None
    except (ValueError, TypeError, AttributeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ArchiveError(f"{where}: not a valid trial: {first}") from None
    if (trial.datetime_start is None) != (state == TrialState.WAITING):
        raise ArchiveError(f"{where}: a {state.name} trial {_START_RULE}")
    if (trial.datetime_complete is None) == state.is_finished():
        raise ArchiveError(f"{where}: a {state.name} trial {_COMPLETE_RULE}")
    return trial


_START_RULE = "has a datetime_start exactly when it is not WAITING"
_COMPLETE_RULE = "has a datetime_complete exactly when it is finished"


# -- importing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedStudy:
    """What an import does with one archived study: create it (`exists` False) or add the
    archive's trials numbered from `kept` on to the one already there."""

    study: ArchivedStudy
    exists: bool
    kept: int

    @property
    def added(self) -> tuple[FrozenTrial, ...]:
        return self.study.trials[self.kept :]


def _point(trial: FrozenTrial) -> dict[str, Any]:
    """A trial's parameters, or a queued trial's fixed ones."""
    return dict(trial.params) or dict(trial.system_attrs.get("fixed_params") or {})


def _same_value(a: Any, b: Any) -> bool:
    both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return bool(a == b or both_nan)


def _same_trial(stored: FrozenTrial, archived: FrozenTrial) -> bool:
    old, new = _point(stored), _point(archived)
    return all(_same_value(old[k], new[k]) for k in old.keys() & new.keys())


def plan_import(
    storage: optuna.storages.BaseStorage, studies: Sequence[ArchivedStudy]
) -> list[PlannedStudy]:
    """What importing the studies would do, checked against the storage; a study there with
    other settings, or other trials under the same numbers, is an ArchiveError naming every
    clash. Writes nothing."""
    existing = {s.study_name: s for s in storage.get_all_studies()}
    plan: list[PlannedStudy] = []
    clashes: list[str] = []
    for study in studies:
        frozen = existing.get(study.name)
        if frozen is None:
            plan.append(PlannedStudy(study, exists=False, kept=0))
            continue
        differ = sorted(
            k
            for k in study.user_attrs.keys() | frozen.user_attrs.keys()
            if study.user_attrs.get(k) != frozen.user_attrs.get(k)
        )
        if tuple(frozen.directions) != study.directions:
            differ.insert(0, "directions")
        if differ:
            clashes.append(f"{study.name} exists with other settings ({', '.join(differ)})")
            continue
        study_id = storage.get_study_id_from_name(study.name)
        stored = sorted(storage.get_all_trials(study_id, deepcopy=False), key=lambda t: t.number)
        pairs = zip(stored, study.trials, strict=False)
        other = [t.number for t, a in pairs if not _same_trial(t, a)]
        if other:
            listed = ", ".join(f"#{n}" for n in other[:5]) + (" ..." if len(other) > 5 else "")
            clashes.append(f"{study.name} holds other trials under the numbers {listed}")
            continue
        plan.append(PlannedStudy(study, exists=True, kept=min(len(stored), len(study.trials))))
    if clashes:
        raise ArchiveError(
            "; ".join(clashes) + ": nothing imported (import into another storage, or "
            "export the study from here and compare)"
        )
    return plan


def write_import(storage: optuna.storages.BaseStorage, plan: Sequence[PlannedStudy]) -> None:
    """Write a checked plan: create the new studies, add the new trials. A new study whose
    writing fails is deleted again, never left half made."""
    for planned in plan:
        study = planned.study
        if planned.exists:
            study_id = storage.get_study_id_from_name(study.name)
            _add_trials(storage, study_id, study.name, planned.added)
            continue
        try:
            study_id = storage.create_new_study(list(study.directions), study.name)
        except optuna.exceptions.DuplicatedStudyError:
            raise ArchiveError(
                f"{study.name} was created by another process during the import: "
                "import again to add its trials"
            ) from None
        try:
            for key, value in study.system_attrs.items():
                storage.set_study_system_attr(study_id, key, value)
            _add_trials(storage, study_id, study.name, study.trials)
            # Last: a study is an hpsearch study (one a worker takes up) once it has these.
            for key, value in study.user_attrs.items():
                storage.set_study_user_attr(study_id, key, value)
        except BaseException:
            storage.delete_study(study_id)
            raise


def _add_trials(
    storage: optuna.storages.BaseStorage,
    study_id: int,
    name: str,
    trials: Sequence[FrozenTrial],
) -> None:
    """Add the trials in order; their numbers are checked once, at the end (a check after
    each trial would cost a query each)."""
    created: dict[int, int] = {}  # trial id -> the number it must have
    for trial in trials:
        new_id = storage.create_new_trial(study_id, template_trial=trial)
        created[new_id] = trial.number
        if trial.state == TrialState.RUNNING and isinstance(storage, optuna.storages.RDBStorage):
            # Stale from the start: the sweep fails and retries it after the grace period.
            storage.record_heartbeat(new_id)
    if not created:
        return
    numbers = {trial_id(t): t.number for t in storage.get_all_trials(study_id, deepcopy=False)}
    moved = [n for new_id, n in created.items() if numbers.get(new_id) != n]
    if moved:
        raise ArchiveError(
            f"{name}: archived trial #{moved[0]} came out under another number: another "
            "process added trials during the import; stop its workers and import again"
        )


@dataclass(frozen=True)
class Imported:
    """What an import did with one study: `created` it, or found it and `added` trials to the
    `kept` ones already there."""

    name: str
    created: bool
    added: int
    kept: int

    def describe(self) -> str:
        if self.created:
            return f"{self.name}: imported, {self.added} trials"
        if self.added:
            return f"{self.name}: {self.added} trials added to the {self.kept} there"
        return f"{self.name}: unchanged, its {self.kept} trials are there already"


def import_archive(
    storage: optuna.storages.BaseStorage, studies: Sequence[ArchivedStudy]
) -> list[Imported]:
    """Import the studies into the storage (the module docstring's rules)."""
    plan = plan_import(storage, studies)
    write_import(storage, plan)
    return [Imported(p.study.name, not p.exists, len(p.added), p.kept) for p in plan]


def write_lines(lines: Iterator[str], out: IO[str]) -> None:
    """An archive to a text stream (stdout)."""
    for line in lines:
        out.write(line)
