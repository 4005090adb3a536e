"""The experiment presets in experiments/ and `[[variants]]` in experiment files: every preset
parses and says its size truly, every -small preset creates exactly its studies, variants
override what they say, and a bad variant writes nothing."""

from __future__ import annotations

import re
import tomllib

import pytest

from hpsearch.cli import main
from hpsearch.studies.loader import load_experiment, load_experiments
from objectives.tasks.capacity import study as capacity
from objectives.tasks.capacity.study import CapacityStudy
from tests.testing import ROOT, create_args, hpsearch, snapshot

EXPERIMENTS = ROOT / "experiments"
PRESETS = (
    "paper-fig1",
    "relu-vs-tanh",
    "unroll",
    "optimizers",
    "init",
    "input-size",
    "per-unit",
    "paper-protocol",
)
CELLS = ("rnn", "ugrnn", "gru", "lstm", "+rnn", "irnn")


def _needs(name: str) -> None:
    """Skip, with the reason, a preset whose task or dimension is not in this version yet."""
    if name.startswith("per-unit"):
        pytest.importorskip(
            "objectives.tasks.per_unit.study", reason="the per-unit task is not merged yet"
        )
    if name.startswith("init") and "init_scheme" not in capacity.DIMENSIONS:
        pytest.skip(
            "the init_scheme dimension is not in objectives.tasks.capacity.study.DIMENSIONS yet"
        )


def _files() -> list[str]:
    return [f"{name}{size}" for name in PRESETS for size in ("", "-small")]


def test_every_preset_has_its_small_file_and_nothing_else_is_new():
    on_disk = {p.stem for p in EXPERIMENTS.glob("*.toml")}
    assert on_disk == {*_files(), "capacity", "demo", "smoke"}


@pytest.mark.parametrize("name", _files())
def test_preset_parses_and_says_its_size(name):
    path = EXPERIMENTS / f"{name}.toml"
    text = path.read_text()
    tomllib.loads(text)  # TOML, whatever this version's tasks
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert f"hpsearch create --from experiments/{name}.toml" in header
    said = re.search(r"= (\d+) studies x (\d+) trials = ([\d,]+) trials", header)
    assert said, f"{name}: the header gives no 'N studies x M trials = K trials'"
    _needs(name)
    experiments = load_experiments(path)
    studies = [s for e in experiments for s in e.studies()]
    trials = {e.trials for e in experiments}
    assert (int(said[1]), {int(said[2])}) == (len(studies), trials), name
    assert int(said[3].replace(",", "")) == len(studies) * int(said[2])
    if name.endswith("-small"):
        assert "--processes 2" in header
        assert all(e.trials <= 20 for e in experiments)


def _capacity(archs, budgets, tags=("",)) -> list[str]:
    return [
        f"capacity-{a}-p{b}" + (f"-{t}" if t else "") for t in tags for a in archs for b in budgets
    ]


# Every -small preset's studies, written out from its file's header comment.
SMALL_STUDIES = {
    "paper-fig1-small": _capacity(CELLS, (200, 1000)),
    "relu-vs-tanh-small": _capacity(("rnn", "ugrnn"), (300, 1000), ("tanh",))
    + _capacity(("rnn", "ugrnn", "irnn"), (300, 1000), ("relu",)),
    "unroll-small": _capacity(("rnn", "gru"), (500,), ("t1", "t2", "t5", "t10")),
    "optimizers-small": _capacity(("rnn", "gru"), (500,), ("adam", "rmsprop", "sgd", "adagrad")),
    "init-small": _capacity(
        ("rnn", "irnn"), (500,), ("identity", "orthogonal", "he", "scaled-normal")
    ),
    "input-size-small": _capacity(("rnn", "gru"), (500,), ("n16", "n32", "n64")),
    "paper-protocol-small": _capacity(("rnn",), (1000,), ("paper",)),
    "per-unit-small": [
        f"per-unit-{a}-n{u}" for a in ("rnn", "gru") for u in (4, 8, 12, 16, 24, 32)
    ],
}


def test_the_list_names_every_small_preset():
    assert set(SMALL_STUDIES) == {f"{name}-small" for name in PRESETS}
    assert len(SMALL_STUDIES["relu-vs-tanh-small"]) == 10


@pytest.mark.parametrize("name", sorted(SMALL_STUDIES))
def test_small_preset_creates_exactly_its_studies(name, sqlite_url, capsys):
    _needs(name)
    code = main(["create", "--storage", sqlite_url, "--from", f"experiments/{name}.toml"])
    out, err = capsys.readouterr()
    assert code == 0, err
    expected = SMALL_STUDIES[name]
    assert sorted(out.split()) == sorted(expected)
    stored = snapshot(sqlite_url)
    assert sorted(stored) == sorted(expected)
    for trials, attrs in stored.values():
        assert trials == 0
        assert attrs["seed"] == 0 and attrs["sampler"] == "gp" and attrs["target_trials"] <= 20


def _attrs(url: str) -> dict[str, dict]:
    return {name: attrs for name, (_, attrs) in snapshot(url).items()}


def test_a_variant_override_changes_the_stored_setting(sqlite_url):
    assert main(["create", "--storage", sqlite_url, "--from", "experiments/unroll-small.toml"]) == 0
    attrs = _attrs(sqlite_url)
    for t in (1, 2, 5, 10):
        for arch in ("rnn", "gru"):
            study = attrs[f"capacity-{arch}-p500-t{t}"]
            assert study["unroll"] == t and study["tag"] == f"t{t}"
            space = CapacityStudy.from_attrs(study).space
            assert space["max_steps"].choices == (1000,)  # from the top level, kept


def test_variant_space_is_merged_key_by_key(sqlite_url):
    assert (
        main(["create", "--storage", sqlite_url, "--from", "experiments/optimizers-small.toml"])
        == 0
    )
    attrs = _attrs(sqlite_url)
    for optimizer in ("adam", "rmsprop", "sgd", "adagrad"):
        space = CapacityStudy.from_attrs(attrs[f"capacity-gru-p500-{optimizer}"]).space
        assert space["optimizer"].choices == (optimizer,)  # the variant's
        assert (space["learning_rate"].low, space["learning_rate"].high) == (1e-4, 1.0)  # top
        assert space["max_steps"].choices == (1000,)  # the top level's
        assert space["init_scale"].low == 0.1  # the default's, untouched


def test_variants_without_a_seed_share_one(sqlite_url, tmp_path):
    path = tmp_path / "e.toml"
    path.write_text(
        "archs = ['rnn']\nbudgets = [300]\ndepths = [1]\n"
        "[[variants]]\ntag = 'a'\n[[variants]]\ntag = 'b'\nunroll = 2\n"
    )
    assert main(["create", "--storage", sqlite_url, "--from", str(path)]) == 0
    attrs = _attrs(sqlite_url)
    assert sorted(attrs) == ["capacity-rnn-p300-a", "capacity-rnn-p300-b"]
    assert attrs["capacity-rnn-p300-a"]["seed"] == attrs["capacity-rnn-p300-b"]["seed"]
    assert attrs["capacity-rnn-p300-b"]["unroll"] == 2
    assert (
        attrs["capacity-rnn-p300-a"]["unroll"]
        == CapacityStudy.__dataclass_fields__["unroll"].default
    )


def test_a_file_without_variants_is_one_experiment_as_before(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text("archs = ['rnn']\nbudgets = [300]\ntag = 'x'\n")
    (experiment,) = load_experiments(path)
    assert load_experiment(path) == experiment
    assert [s.name for s in experiment.studies()] == ["capacity-rnn-p300-x"]
    with pytest.raises(Exception, match="has 4 \\[\\[variants\\]\\], not one experiment"):
        load_experiment(EXPERIMENTS / "unroll-small.toml")


VARIANT_BASE = "archs = ['rnn']\nbudgets = [300]\ndepths = [1]\ntrials = 2\n"

BAD_VARIANTS = [
    (
        "[[variants]]\ntag = 'a'\n[[variants]]\ntag = 'b'\n[[variants]]\ntag = 'a'\nunroll = 2\n",
        "variant 3: tag 'a' is variant 1's too: each variant needs a tag of its own",
    ),
    ("[[variants]]\ntag = 'a'\n[[variants]]\nunroll = 2\n", "variant 2: needs a tag of its own"),
    ("[[variants]]\ntag = ''\n", "variant 1: needs a tag of its own"),
    ("[[variants]]\ntag = 3\n", "variant 1: tag: expected text"),
    ("[[variants]]\ntag = 'a'\ncolour = 'red'\n", "variant 1: unknown key 'colour'; the keys"),
    (
        "[[variants]]\ntag = 'a'\ntrails = 3\n",
        "variant 1: unknown key 'trails' (did you mean 'trials'?)",
    ),
    ("[[variants]]\ntag = 'a'\nvariants = []\n", "variant 1: unknown key 'variants'"),
    ("variants = 3\n", "variants: give each variant as a [[variants]] table"),
    # The first variant is good; the second's budget is too small: neither is written.
    ("[[variants]]\ntag = 'a'\n[[variants]]\ntag = 'b'\nbudgets = [10]\n", "variant 2: budget 10"),
    (
        "[[variants]]\ntag = 'a'\n[variants.space]\nlr = '1e-3'\n",
        'variant 1: [variants.space] lr = "1e-3": unknown search',
    ),
    ("[[variants]]\ntag = 'a'\nspace = 3\n", "variant 1: space: must be a table"),
    ("[[variants]]\ntag = 'a'\ntask = 'per-unit'\n", "variant 1: budgets is for task capacity"),
]


@pytest.mark.parametrize(("variants", "match"), BAD_VARIANTS)
def test_bad_variants_exit_2_and_write_nothing(sqlite_url, tmp_path, variants, match):
    assert main(create_args(sqlite_url, 1)) == 0  # a study there already
    before = snapshot(sqlite_url)
    path = tmp_path / "e.toml"
    path.write_text(VARIANT_BASE + variants)
    result = hpsearch("create", "--storage", sqlite_url, "--from", str(path))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"hpsearch create: error: {path}: "), lines[0]
    assert match in lines[0], lines[0]
    assert snapshot(sqlite_url) == before
    # Nor is a new database file made.
    new = tmp_path / "new.db"
    assert hpsearch("create", "--storage", f"sqlite:///{new}", "--from", str(path)).returncode == 2
    assert not new.exists()


def test_one_name_twice_is_caught_before_anything_is_written(sqlite_url):
    from hpsearch.errors import HpsearchError
    from hpsearch.studies.records import create_studies
    from hpsearch.studies.schema import Experiment
    from storage import open_storage

    storage = open_storage(sqlite_url, create=True)
    one = Experiment(archs=("rnn",), budgets=(300,), depths=(1,))
    other = Experiment(archs=("gru",), budgets=(300,), depths=(1,))
    with pytest.raises(HpsearchError, match="two studies would be named capacity-rnn-p300"):
        create_studies(storage, other, one, one)
    assert snapshot(sqlite_url) == {}


def test_per_unit_preset_settings():
    pytest.importorskip(
        "objectives.tasks.per_unit.study", reason="the per-unit task is not merged yet"
    )
    from objectives.tasks.per_unit import study as per_unit

    (full,) = load_experiments(EXPERIMENTS / "per-unit.toml")
    assert full.task == "per-unit" and full.n_in == 64 and 64 in full.sizes
    assert min(full.sizes) == 8 and max(full.sizes) == 128
    (small,) = load_experiments(EXPERIMENTS / "per-unit-small.toml")
    assert set(small.space) <= set(per_unit.DIMENSIONS), "per-unit-small sets unknown dimensions"
    for study in small.studies():
        assert study.n_in == 16 and study.to_attrs()["task"] == "per-unit"
