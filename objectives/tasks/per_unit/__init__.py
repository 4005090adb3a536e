"""The per-unit (memory-throughput) task: a random input shown once is reconstructed some steps
later; its value is the fraction of the input's variance reconstructed (docs/tasks.md)."""

from objectives.tasks.description import TaskDescription

DESCRIPTION = TaskDescription(
    name="per-unit",
    metric="fraction reconstructed",
    value_format="{:.3f} recon.",
    size_field="units",
    per_param=False,
    summary=(
        "**Task**: per-unit capacity (Collins, Sohl-Dickstein & Sussillo, ICLR 2017, the "
        "memory-throughput task). A random {n_in}-dimensional input, shown at the first of "
        "{unroll} steps, is to be reconstructed from the network's state at the last step; the "
        "value is the fraction reconstructed (1 is all of it). The paper finds that every cell "
        "succeeds if and only if it has at least n_in units per layer."
    ),
    table="per-unit",
    study="objectives.tasks.per_unit.study.PerUnitStudy",
    sizes="units",
    note_setup=(
        "**Cell**: {arch}; **units**: {units} per layer; **n_in**: {n_in}; **inputs**: {inputs} "
        "(variance 1)."
    ),
    note_best=(
        "**Best so far**: **{value:.4f}** of the input reconstructed (trial {number}"
        "{at_depth}). {complete} of {target} trials complete."
    ),
)
