"""The batched trainer on a CUDA device against the same trials one by one on the CPU. Runs
only where CUDA is present (marker gpu)."""

import pytest
import torch

from objectives.batched import BatchedTrainer, shape_key
from objectives.capacity import CapacityConfig
from objectives.training import train_capacity

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("arch", ["rnn", "lstm"])
def test_cuda_batch_matches_cpu_one_by_one(arch):
    configs = [
        CapacityConfig(
            arch=arch,
            n_in=16,
            hidden_size=8,
            depth=2,
            unroll=3,
            b=60 + 45 * i,
            learning_rate=0.005,
            init_scale=1.0,
            max_steps=40,
            patience=1000,
            seed=i,
        )
        for i in range(8)
    ]
    trainer = BatchedTrainer(shape_key(configs[0]), len(configs), "cuda")
    for c in configs:
        trainer.add(c)
    results = {c.seed: r for c, r in trainer.run(10_000)}
    for c in configs:
        alone = train_capacity(c, "cpu")
        assert results[c.seed].device.startswith("cuda")
        assert abs(results[c.seed].errors - alone.errors) <= max(1, 0.01 * c.b)
