"""init_scheme: how input and recurrent matrices start. Both trainers start a trial from the
same weights under every scheme; each scheme gives the matrices it names; studies made before
the dimension read as scaled-normal, today's initialisation."""

import dataclasses

import pytest
import torch

import objectives.tasks.objective
import objectives.training.trainer
from objectives.networks.architectures import INIT_SCHEMES
from objectives.networks.cells import init_params
from objectives.tasks.capacity.study import ADDED_DIMENSIONS, DIMENSIONS, build_study
from objectives.tasks.objective import shape_key
from objectives.tasks.per_unit.study import DIMENSIONS as PER_UNIT_DIMENSIONS
from objectives.tasks.per_unit.study import PerUnitConfig
from objectives.tasks.space import fixed
from objectives.training.batched import BatchedTrainer
from tests.testing import capacity_config


def _params(arch, scheme, scale=1.0, seed=3, n_in=5, n=4, depth=2):
    gen = torch.Generator().manual_seed(seed)
    return init_params(arch, n_in, n, depth, scale, gen, scheme=scheme)


def _blocks(w, n):
    return w.split(n, dim=1)


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
@pytest.mark.parametrize("task", ["capacity", "per-unit"])
@pytest.mark.parametrize("arch", ["rnn", "gru", "lstm", "+rnn"])
def test_both_trainers_start_from_the_same_weights(monkeypatch, arch, task, scheme):
    config = capacity_config(arch=arch, depth=2, init_scheme=scheme, init_scale=1.3, max_steps=1)
    if task == "per-unit":
        known = {f.name for f in dataclasses.fields(PerUnitConfig)} - {"b", "budget"}
        fields = {k: v for k, v in config.__dict__.items() if k in known}
        config = PerUnitConfig(**fields, samples=20, eval_samples=10)
    seen = []

    def recorded(*args, **kwargs):
        params = init_params(*args, **kwargs)
        seen.append({k: v.clone() for k, v in params.items()})
        return params

    monkeypatch.setattr(objectives.training.trainer, "init_params", recorded)
    objectives.tasks.objective.train(config)
    (alone,) = seen
    trainer = BatchedTrainer(shape_key(config), 3)
    trainer.add(dataclasses.replace(config, seed=99))
    index = trainer.add(config)
    held = trainer._blocks(trainer.weights.detach())
    assert set(held) == set(alone)
    for name, w in alone.items():
        assert torch.equal(held[name][index], w), name
    other = "he" if scheme != "he" else "scaled-normal"
    assert not torch.equal(_params(arch, scheme)["l0.w_h"], _params(arch, other)["l0.w_h"])


@pytest.mark.parametrize("arch", ["rnn", "ugrnn", "gru", "lstm", "+rnn"])
def test_identity_gives_identity_recurrent_matrices(arch):
    p = _params(arch, "identity", scale=0.7)
    for layer in (0, 1):
        recurrent = [p[f"l{layer}.w_h"]] + ([p[f"l{layer}.w_hc"]] if arch == "gru" else [])
        for w in recurrent:
            for block in _blocks(w, 4):
                assert torch.equal(block, 0.7 * torch.eye(4))
    # input matrices stay scaled-normal: the same draws as that scheme
    assert torch.equal(p["l0.w_x"], _params(arch, "scaled-normal", scale=0.7)["l0.w_x"])
    assert torch.equal(_params(arch, "identity")["l0.w_h"][:, :4], torch.eye(4))


@pytest.mark.parametrize("arch", ["rnn", "gru", "lstm"])
def test_orthogonal_blocks_are_orthogonal(arch):
    p = _params(arch, "orthogonal", scale=2.0, n_in=3, n=6)
    for block in _blocks(p["l1.w_h"], 6):
        assert torch.allclose(block.T @ block, 4.0 * torch.eye(6), atol=1e-5)
    for block in _blocks(p["l0.w_x"], 6):  # 3 x 6: orthonormal rows
        assert torch.allclose(block @ block.T, 4.0 * torch.eye(3), atol=1e-5)
    for block in _blocks(p["l1.w_x"], 6):  # the layer below's 6 outputs: square
        assert torch.allclose(block.T @ block, 4.0 * torch.eye(6), atol=1e-5)


def test_he_is_scaled_normal_times_root_two():
    he, normal = _params("lstm", "he"), _params("lstm", "scaled-normal")
    for name in ("l0.w_x", "l0.w_h", "l1.w_x", "l1.w_h"):
        assert torch.allclose(he[name], 2**0.5 * normal[name], rtol=1e-6)
    assert torch.equal(he["out.w"], normal["out.w"])  # the readout is not an input matrix


def test_irnn_keeps_its_identity_and_default_is_unchanged():
    for scheme in INIT_SCHEMES:
        assert torch.equal(_params("irnn", scheme)["l0.w_h"], torch.eye(4))
    gen = torch.Generator().manual_seed(3)
    default = init_params("gru", 5, 4, 2, 1.0, gen)
    for name, w in _params("gru", "scaled-normal").items():
        assert torch.equal(default[name], w)


def test_the_dimension_is_last_and_old_studies_read_as_scaled_normal():
    # last of the first eleven; the paper's protocol's dimensions came after it
    assert DIMENSIONS[10] == "init_scheme" == PER_UNIT_DIMENSIONS[-1]
    assert ADDED_DIMENSIONS["init_scheme"] == fixed("scaled-normal")
    study = build_study("rnn", 500)
    assert study.space["init_scheme"] == fixed("scaled-normal")
    old = study.to_attrs()
    del old["space"]["init_scheme"]
    assert type(study).from_attrs(old) == study
    searched = build_study("rnn", 500, overrides={"init_scheme": "orthogonal,identity"})
    assert searched.space["init_scheme"].choices == ("orthogonal", "identity")
    with pytest.raises(ValueError, match="init_scheme: unknown value 'xavier'"):
        build_study("rnn", 500, overrides={"init_scheme": "xavier"})
    with pytest.raises(ValueError, match="init_scheme 'xavier'"):
        capacity_config(init_scheme="xavier")
