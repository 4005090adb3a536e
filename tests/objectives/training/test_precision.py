"""Lower-precision matmuls are applied inside the batched trainer only, and the probe that
decides on them measures the gap to full precision. On a CPU the lower precision is bfloat16
(where the CPU has it); TF32 on CUDA runs in test_batched_gpu.py."""

import pytest
import torch

from objectives.tasks.objective import probe, shape_key
from objectives.training.batched import BatchedTrainer
from objectives.training.precision import matmul_precision, probe_trials
from tests.testing import capacity_config

CPU = torch.device("cpu")


def _config():
    return capacity_config(arch="lstm", b=200, max_steps=30, patience=10**6, seed=5)


def _cpu_has_bf16_matmul() -> bool:
    a = torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
    full = a @ a
    with matmul_precision(CPU, "bf16"):
        low = a @ a
    return not torch.equal(full, low)


def test_precision_is_set_for_the_block_only():
    before = torch.backends.mkldnn.matmul.fp32_precision
    with matmul_precision(CPU, "bf16"):
        assert torch.backends.mkldnn.matmul.fp32_precision == "bf16"
    assert torch.backends.mkldnn.matmul.fp32_precision == before
    with pytest.raises(ValueError, match="'tf32' is not available on cpu"):
        with matmul_precision(CPU, "tf32"):
            pass


def test_full_precision_probe_finds_no_gap():
    result = probe(probe_trials(_config()), "cpu", "ieee")
    assert (result.worst_error_gap, result.worst_loss_gap) == (0.0, 0.0)
    assert result.within_tolerance and "within tolerance" in result.describe()


def test_probe_trials_differ_in_data_only():
    config = _config()
    trials = probe_trials(config, 3)
    assert len({t.seed for t in trials} | {config.seed}) == 4
    assert all(t.learning_rate == config.learning_rate and t.b == config.b for t in trials)
    assert all(t.patience >= 10**6 for t in trials)


def test_lower_precision_reaches_the_trainer_and_the_probe_measures_it():
    if not _cpu_has_bf16_matmul():
        pytest.skip("this CPU computes float32 matmuls at full precision even when asked not to")
    configs = probe_trials(_config())
    losses = {}
    for precision in ("ieee", "bf16"):
        trainer = BatchedTrainer(shape_key(configs[0]), 4, precision=precision)
        for c in configs:
            trainer.add(c)
        losses[precision] = sorted(r.final_loss for _, r in trainer.run(10**6))
    assert losses["ieee"] != losses["bf16"]
    strict = probe(configs, "cpu", "bf16", tolerance=0.0)
    assert strict.worst_loss_gap > 0 and not strict.within_tolerance
    assert "outside tolerance" in strict.describe()
    assert torch.backends.mkldnn.matmul.fp32_precision == "none"


def test_full_precision_is_full_whatever_the_process_setting():
    if not _cpu_has_bf16_matmul():
        pytest.skip("this CPU computes float32 matmuls at full precision even when asked not to")
    configs = probe_trials(_config(), 2)

    def losses():
        trainer = BatchedTrainer(shape_key(configs[0]), 2)
        for c in configs:
            trainer.add(c)
        return sorted(r.final_loss for _, r in trainer.run(10**6))

    plain = losses()
    torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    try:
        assert losses() == plain
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = "none"


def test_trainer_refuses_a_precision_the_device_lacks():
    with pytest.raises(ValueError, match="'tf32' is not available on cpu"):
        BatchedTrainer(shape_key(_config()), 2, precision="tf32")
