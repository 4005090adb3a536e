"""The worker's line per trial reads the task's description; the loop names no task."""

from __future__ import annotations

import ast
import inspect
import logging
from dataclasses import dataclass, field
from typing import Any

import hpsearch.worker.loop as loop
from hpsearch.worker.loop import Worker
from objectives.tasks.description import task_names


@dataclass(frozen=True)
class _Result:
    value: float
    diverged: bool = False
    attrs: dict[str, Any] = field(default_factory=dict)

    def to_attrs(self) -> dict[str, Any]:
        return dict(self.attrs)


def test_a_trial_line_in_the_tasks_words(caplog):
    caplog.set_level(logging.INFO, logger=loop.__name__)
    bits = _Result(1234.5, attrs={"num_params": 500, "steps": 60, "seconds": 1.5})
    Worker._log("capacity", "capacity-rnn-p500", 3, bits, params={"depth": 2, "b": 1000})
    Worker._log(
        "calibration",
        "calibration-c",
        4,
        _Result(-0.25, attrs={"seconds": 0.5}),
        params={"x": 0.123456},
    )
    Worker._log("per-unit", "per-unit-rnn-u8", 5, _Result(0.9, True, {"num_params": 10}), True)
    Worker._log("a-test-task", "t", 6, _Result(0.125))  # registered without a description
    assert caplog.messages == [
        "capacity-rnn-p500 #3: 1234.5 bits (2.47 bits/param) depth=2 b=1000 steps=60 in 1.50s",
        "calibration-c #4: -0.25 x=0.123 in 0.50s",
        "per-unit-rnn-u8 #5: 0.900 recon. DIVERGED PRUNED in nans",
        "t #6: value 0.125 in nans",
    ]


def test_the_loop_names_no_task():
    strings = {
        node.value
        for node in ast.walk(ast.parse(inspect.getsource(loop)))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    assert not strings & set(task_names())
