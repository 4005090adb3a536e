"""An experiment: which studies to create, from command-line flags or a TOML file.

`Experiment` is the one schema of `hpsearch create`: each field is a setting, its default is
written once (on the field, or, for a setting passed on to every study, on the task's study
class: `CapacityStudy` or `PerUnitStudy`), and its `Option` metadata says how it is read. The
flags of `create` (`hpsearch.cli.flags`) and the keys of an experiment file
(`hpsearch.studies.loader`, with its `[[variants]]`) are derived from these fields; the
studies' settings and stored attrs from the task's study class.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Any, NamedTuple

from hpsearch.errors import HpsearchError, unknown_choice
from hpsearch.search.pruners import PRUNERS, check_pruner
from hpsearch.search.samplers import SAMPLERS, check_sampler
from hpsearch.search.warm import check_warm_from
from hpsearch.studies.spelling import SpaceError, entry_error, parse_space_args, without_name
from objectives.networks.architectures import ARCHS
from objectives.tasks.capacity.study import default_depths
from objectives.tasks.description import TaskDescription, describe, task_names


def parse_list(text: str, what: str, kind: type[int] | type[str]) -> tuple[Any, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise HpsearchError(f"{what}: empty list")
    if kind is str:
        return tuple(parts)
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise HpsearchError(
            f"{what}: expected whole numbers separated by commas, got {text!r}"
        ) from None


# How a value is read: from the flag's text (after argparse's `type`), and from the file.
# File readers raise ValueError with what is wrong; the caller names the file and key.


def _words(text: str, flag: str) -> tuple[str, ...]:
    return parse_list(text, flag, str)


def _whole_numbers(text: str, flag: str) -> tuple[int, ...]:
    return parse_list(text, flag, int)


def _space(items: list[str], flag: str) -> dict[str, str]:
    return parse_space_args(items)


def _as_given(value: Any, flag: str) -> Any:
    return value


def _file_words(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of names, got {value!r}")
    return tuple(value)


def _file_whole_numbers(value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise ValueError(f"expected a list of whole numbers, got {value!r}")
    return tuple(value)


def _file_whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {value!r}")
    return value


def _file_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    return value


def _file_table(value: Any) -> dict[str, Any]:
    """The [space] table, its values already in the flag's spelling (hpsearch.studies.loader
    reads each with `spelling.from_file`)."""
    if not isinstance(value, dict):
        raise ValueError("must be a table ([space] NAME = SPEC)")
    return value


@dataclass(frozen=True)
class Option:
    """How one experiment field is given: flag `flag` on `hpsearch create`, key = the field's
    name in an experiment file. Examples in `help` are in backquotes (a test runs them)."""

    help: str
    read_flag: Callable[[Any, str], Any]
    read_file: Callable[[Any], Any]
    flag: str = ""  # default: --field-name
    type: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    repeat: bool = False
    metavar: str | None = None
    # Help that depends on the tasks (their own defaults, their dimensions), made from the
    # field's name when the flags are built.
    more_help: Callable[[str], str] | None = None


WORDS: dict[str, Any] = {"read_flag": _words, "read_file": _file_words}
WHOLE_NUMBERS: dict[str, Any] = {"read_flag": _whole_numbers, "read_file": _file_whole_numbers}
WHOLE: dict[str, Any] = {"read_flag": _as_given, "read_file": _file_whole, "type": int}
TEXT: dict[str, Any] = {"read_flag": _as_given, "read_file": _file_text}
TABLE: dict[str, Any] = {"read_flag": _space, "read_file": _file_table, "repeat": True}


class TaskSchema(NamedTuple):
    """What `create` needs of a task: its study class (whose fields hold the defaults of the
    settings passed on to every study), `build(arch, size, *, depths, overrides, **settings)`
    that makes one study or raises ValueError, its search dimensions, and the `Experiment`
    field that sizes its studies (one study per arch and size)."""

    study: type[Any]
    build: Callable[..., Any]
    dimensions: tuple[str, ...]
    size_field: str


def _schema(task: TaskDescription) -> TaskSchema:
    """A task's schema, from the study module its description names."""
    module_name, _, class_name = task.study.rpartition(".")
    module = importlib.import_module(module_name)
    return TaskSchema(
        getattr(module, class_name), module.build_study, module.DIMENSIONS, task.sizes
    )


# The tasks `create` makes studies of: those whose description names a study class. Their
# study modules import no torch (a test checks); they are imported here, with this module.
TASKS: dict[str, TaskSchema] = {
    name: _schema(describe(name)) for name in task_names() if describe(name).study
}
CAPACITY = "capacity"  # the default task of an experiment (a stored name, never changes)
TASK_CHOICES: tuple[str, ...] = tuple(TASKS)
SIZE_FIELD: dict[str, str] = {task: schema.size_field for task, schema in TASKS.items()}


def task_schema(task: str) -> TaskSchema:
    try:
        return TASKS[task]
    except KeyError:
        raise HpsearchError(unknown_choice("task", task, TASK_CHOICES)) from None


def _task_defaults_help(name: str) -> str:
    """Each task's own default of a study setting, read from its study class."""
    defaults = {
        task: {f.name: f for f in fields(schema.study)}[name].default
        for task, schema in TASKS.items()
    }
    values = list(dict.fromkeys(defaults.values()))
    if len(values) == 1:
        return "" if values[0] in ("", None) else f" (default {values[0]})"
    return " (default " + ", ".join(f"{v} for {task}" for task, v in defaults.items()) + ")"


def _dimensions_help(name: str) -> str:
    return "; dimensions " + "; ".join(
        f"of {task}: {', '.join(schema.dimensions)}" for task, schema in TASKS.items()
    )


def _option(help: str, kind: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    return {"option": Option(help=help, **{**kind, **kwargs})}


def _study_setting(help: str, kind: Mapping[str, Any]) -> Any:
    """A setting passed on to every study. Left out (None), each study takes its task's own
    default, declared once on the task's study class (the help shows it)."""
    return field(
        default=None,
        metadata={**_option(help, kind, more_help=_task_defaults_help), "study_field": True},
    )


def _own_default_help(name: str) -> str:
    """The default of a setting only some tasks' studies have, read from their study
    classes."""
    defaults = {
        task: by_name[name].default
        for task, schema in TASKS.items()
        if name in (by_name := {f.name: f for f in fields(schema.study)})
    }
    return " (default " + ", ".join(f"{v} for {task}" for task, v in defaults.items()) + ")"


def _task_setting(task: str, help: str, kind: Mapping[str, Any]) -> Any:
    """A setting passed on to the studies of one task only (given for another task, an
    error). Left out (None), each study takes the default declared on its study class."""
    return field(
        default=None,
        metadata={**_option(help, kind, more_help=_own_default_help), "task_setting": task},
    )


def _csv(values: tuple[int, ...]) -> str:
    return ",".join(str(v) for v in values)


def check_sizes(task: str, given: Collection[str], word: Callable[[str], str]) -> None:
    """A task's studies are sized by its own field only (budgets for capacity, units for
    per-unit), which must be given. `word` spells a field as the user wrote it."""
    for owner, size in SIZE_FIELD.items():
        if owner != task and size in given:
            raise HpsearchError(f"{word(size)} is for {word('task')} {owner}")
    if SIZE_FIELD[task] not in given:
        raise HpsearchError(f"{word('task')} {task} needs {word(SIZE_FIELD[task])}")


@dataclass(frozen=True)
class Experiment:
    """One study per (arch, budget) of the capacity task, or per (arch, units) of the
    per-unit task; each with `trials` as its target."""

    archs: tuple[str, ...] = field(
        metadata=_option(
            f"cells, comma-separated, from {', '.join(ARCHS)}: `--arch rnn,gru`",
            WORDS,
            flag="--arch",
        )
    )
    budgets: tuple[int, ...] | None = field(
        default=None,
        metadata=_option(
            "parameter budgets of --task capacity, comma-separated: `--budget 200,1000`",
            WHOLE_NUMBERS,
            flag="--budget",
        ),
    )
    units: tuple[int, ...] | None = field(
        default=None,
        metadata=_option(
            "hidden units per layer of --task per-unit, comma-separated: "
            "`--task per-unit --units 8,16,32`",
            WHOLE_NUMBERS,
        ),
    )
    task: str = field(
        default=CAPACITY,
        metadata=_option(
            "the task of the studies: capacity (bits stored per parameter, one study per "
            "arch and --budget) or per-unit (an input reconstructed through a layer of "
            "--units units, one study per arch and units)",
            TEXT,
            choices=TASK_CHOICES,
        ),
    )
    depths: tuple[int, ...] | None = field(
        default=None,  # the task's, capacity.default_depths(arch) for capacity
        metadata=_option(
            f"depths to search, comma-separated (default: the task's; for capacity "
            f"{_csv(default_depths('rnn'))}, and {_csv(default_depths('+rnn'))} for +rnn): "
            "`--depths 1,2`",
            WHOLE_NUMBERS,
        ),
    )
    trials: int = field(
        default=100, metadata=_option("target trials per study: `--trials 20`", WHOLE)
    )
    n_in: int | None = _study_setting("input size: bits (capacity), dimensions (per-unit)", WHOLE)
    unroll: int | None = _study_setting("time steps T", WHOLE)
    inputs: str | None = _task_setting(
        "per-unit",
        "how --task per-unit draws each input number, with variance 1: uniform on "
        "[-sqrt(3), sqrt(3)] (the paper's) or gaussian (that of studies made before this "
        "setting): `--task per-unit --units 8 --inputs gaussian`",
        TEXT,
    )
    patience: int | None = _study_setting("steps without improvement before a trial stops", WHOLE)
    sampler: str = field(
        default="gp",
        metadata=_option("Optuna sampler: `--sampler tpe`", TEXT, choices=SAMPLERS),
    )
    pruner: str = field(
        default="none",
        metadata=_option(
            "Optuna pruner, which may stop a trial at a checkpoint: `--pruner median`",
            TEXT,
            choices=PRUNERS,
        ),
    )
    seed: int | None = field(
        default=None,
        metadata=_option("study seed (trial data and weights; default random): `--seed 0`", WHOLE),
    )
    # NAME -> SPEC, in the flag's spelling (hpsearch.studies.spelling), from flags and files.
    space: Mapping[str, str] = field(
        default_factory=dict,
        metadata=_option(
            "search space, repeatable. Fix a value "
            "`--space learning_rate=1e-3`, search a range on the default's scale "
            "`--space learning_rate=1e-4:1e-1` or choose from a list "
            "`--space optimizer=adam,sgd` (in a file's [space]: learning_rate = 1e-3, "
            'learning_rate = "1e-4:1e-1", optimizer = ["adam", "sgd"])',
            TABLE,
            metavar="NAME=SPEC",
            more_help=_dimensions_help,
        ),
    )
    warm_from: tuple[str, ...] | None = field(
        default=None,
        metadata=_option(
            "warm start: the GP samplers (gp, gp-batch) also fit the results of these "
            "studies, b relative to the parameter count and bits per parameter, with the "
            "budget and depth as features (auto: every other study of the same task and "
            "arch in the storage; or study names, comma-separated, which must exist; default "
            "none): `--warm-from auto`",
            WORDS,
            metavar="auto|STUDY[,STUDY...]",
        ),
    )
    tag: str | None = _study_setting(
        "name suffix (capacity-ARCH-pBUDGET-TAG, per-unit-ARCH-nUNITS-TAG), to compare "
        "samplers, say: `--tag tpe`",
        TEXT,
    )

    def __post_init__(self) -> None:
        if self.task not in TASK_CHOICES:
            raise HpsearchError(unknown_choice("task", self.task, TASK_CHOICES))
        given = [f.name for f in fields(self) if getattr(self, f.name) is not None]
        check_sizes(self.task, given, _flag_of)
        for f in fields(self):
            owner = f.metadata.get("task_setting")
            if owner is not None and owner != self.task and f.name in given:
                raise HpsearchError(f"{_flag_of(f.name)} is for --task {owner}")
        if not self.archs:
            raise HpsearchError("give at least one arch")
        size = _flag_of(SIZE_FIELD[self.task])
        if not self.sizes:
            raise HpsearchError(f"{size}: give at least one value")
        if len(set(self.archs)) != len(self.archs) or len(set(self.sizes)) != len(self.sizes):
            raise HpsearchError(f"--arch and {size} values must not repeat")
        if not 1 <= self.trials <= 1_000_000:
            raise HpsearchError(f"trials must be in [1, 1000000], got {self.trials}")
        if self.seed is not None and not 0 <= self.seed < 2**31:
            raise HpsearchError(f"seed must be in [0, 2^31), got {self.seed}")
        check_sampler(self.sampler)
        check_pruner(self.pruner)
        if self.warm_from is not None:
            try:
                check_warm_from(self.warm_from)
            except ValueError as e:
                raise HpsearchError(f"{_flag_of('warm_from')}: {e}") from None
        for name, spec in self.space.items():
            if not isinstance(name, str) or not isinstance(spec, str):
                raise HpsearchError(
                    f"space: give NAME -> SPEC as text, as --space NAME=SPEC takes it; "
                    f"got {name!r}: {spec!r}"
                )

    @property
    def sizes(self) -> tuple[int, ...]:
        """The budgets (capacity) or units (per-unit): one study per arch and size."""
        sizes: tuple[int, ...] | None = getattr(self, SIZE_FIELD[self.task])
        return sizes or ()

    def _error(
        self, message: str, schema: TaskSchema, arch: str, size: int, settings: dict[str, Any]
    ) -> HpsearchError:
        """The error of a study that could not be built, blamed on the dimension of the space
        that is wrong on its own (checked against the same study's default space) or whose
        name starts the task's message; else the task's message as it is."""
        if not self.space:
            return HpsearchError(message)
        try:
            default = schema.build(arch, size, depths=self.depths, **settings)
        except ValueError:
            return HpsearchError(message)  # not the space's fault
        for name, spec in self.space.items():
            error = entry_error(name, spec, default.space)
            if error is not None:
                return error
        name, _, _ = message.partition(": ")
        if name in self.space:
            return SpaceError(name, self.space[name], without_name(name, message))
        return HpsearchError(message)

    def studies(self) -> list[Any]:
        """Every study's settings (`CapacityStudy` or `PerUnitStudy`), validated; raises
        before anything is written."""
        schema = task_schema(self.task)
        settings = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if (f.metadata.get("study_field") or f.metadata.get("task_setting"))
            and getattr(self, f.name) is not None
        }
        out = []
        for arch in self.archs:
            for size in self.sizes:
                try:
                    out.append(
                        schema.build(
                            arch, size, depths=self.depths, overrides=self.space, **settings
                        )
                    )
                except ValueError as e:
                    raise self._error(str(e), schema, arch, size, settings) from None
        return out


def options() -> list[tuple[Field[Any], Option]]:
    """Every setting of `create`, in the schema's order."""
    return [(f, f.metadata["option"]) for f in fields(Experiment)]


def flag(f: Field[Any], option: Option) -> str:
    return option.flag or "--" + f.name.replace("_", "-")


def _flag_of(name: str) -> str:
    """The flag of the field `name`."""
    return next(flag(f, option) for f, option in options() if f.name == name)
