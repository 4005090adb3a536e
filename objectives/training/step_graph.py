"""A batched training step captured once as a CUDA graph and replayed.

One step of a batch of small recurrent networks is a few hundred small kernels; launched one
by one from Python, a GPU spends most of the step waiting for the next launch. Replaying a
captured graph launches them all at once. Capture needs a step that keeps every tensor at
its address and never waits for the host: `objectives.training.batched.BatchedTrainer.step` is
written so.

The capture is checked before it is trusted: from the same state, one replay and one eager
step must leave every tensor of the trainer's state the same (to float rounding). A capture
that fails or differs is reported, and the trainer goes on eagerly for good.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

WARM_UP_STEPS = 3  # eager steps on a side stream before capture, as torch.cuda.graph asks


class StepGraph:
    """Calls `step` eagerly for a few warm-up steps, then captures it and replays the capture.
    `state()` lists every tensor the step reads and writes (for the check)."""

    def __init__(self, step: Callable[[], None], state: Callable[[], list[Tensor]]) -> None:
        self.step = step
        self.state = state
        self.warm = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.failed = False
        self.side = torch.cuda.Stream()  # one stream for every warm-up step

    def __call__(self) -> None:
        """One training step."""
        if self.graph is not None:
            self.graph.replay()
        elif self.failed:
            self.step()
        elif self.warm < WARM_UP_STEPS:
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                self.step()
            torch.cuda.current_stream().wait_stream(self.side)
            self.warm += 1
        else:
            self._capture_and_check()

    def _capture_and_check(self) -> None:
        """Capture the step, then take one step both ways from the same state and keep the
        capture if they agree. Leaves the state one step on either way."""
        tensors = self.state()
        before = [t.detach().clone() for t in tensors]
        graph = torch.cuda.CUDAGraph()
        try:
            # On the warm-up stream, whose math-library handles and workspaces the warm-up
            # steps set up, so that the capture does not have to.
            with torch.cuda.graph(graph, stream=self.side):
                self.step()
        except Exception as e:  # any failure to capture: eager steps are always right
            logger.warning("CUDA-graph capture failed, training eagerly: %s", e)
            self._fall_back(tensors, before)
            return
        graph.replay()
        replayed = [t.detach().clone() for t in tensors]
        with torch.no_grad():
            for t, b in zip(tensors, before, strict=True):
                t.copy_(b)
        self.step()
        agree = all(_same(r, t.detach()) for r, t in zip(replayed, tensors, strict=True))
        if agree:
            self.graph = graph
        else:
            logger.warning("a CUDA-graph step differs from the eager step; training eagerly")
            self.failed = True

    def _fall_back(self, tensors: list[Tensor], before: list[Tensor]) -> None:
        torch.cuda.synchronize()
        with torch.no_grad():
            for t, b in zip(tensors, before, strict=True):
                t.copy_(b)
        self.failed = True
        self.step()


def _same(a: Tensor, b: Tensor) -> bool:
    if a.is_floating_point():
        return torch.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True)
    return torch.equal(a, b)
