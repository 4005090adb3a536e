"""What training offers a task and asks of it, torch-free so that a task's study can check its
settings against it without importing torch: the named choices of training (optimizers,
learning-rate schedules), how often a pruner looks, and the checkpoint a pruner looks
through.
"""

from __future__ import annotations

from collections.abc import Callable

# The optimizers of `objectives.training.trainer.make_optimizer` (and of the batched
# trainer, written out step for step as torch.optim computes them).
OPTIMIZERS: tuple[str, ...] = ("adam", "rmsprop", "sgd", "adagrad")

# Learning-rate schedules over a trial's max_steps (objectives.training.rules.lr_factor): the
# rate of optimizer step s (0-based) is learning_rate times
#   constant: 1
#   cosine:   (1 + cos(pi * s / max_steps)) / 2, from 1 at the first step towards 0 at the end
#   step:     1, then 0.1 from step max_steps / 2 on, 0.01 from step 3 * max_steps / 4 on
# A trial's progress holds its schedule as an index into this tuple: append, never reorder.
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine", "step")

# How often a trial's best value is shown to its checkpoint (a pruner), in optimizer steps.
CHECKPOINT_STEPS = 500

# A pruner's look at a running trial: called with (optimizer steps taken, best value so far);
# returning False ends the trial early (its result then says `pruned`).
Checkpoint = Callable[[int, float], bool]
