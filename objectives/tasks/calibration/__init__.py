"""The calibration task: a known function in place of training, to measure the service."""

from objectives.tasks.description import TaskDescription

DESCRIPTION = TaskDescription(
    name="calibration",
    metric="value",
    value_format="{:.4g}",
    size_field="",
    per_param=False,
    summary="**Task**: calibration, a known function in place of training.",
)
