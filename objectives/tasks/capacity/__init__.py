"""The per-parameter capacity task: a network memorises b random binary labels; its value is
the mutual information between true and predicted labels, in bits (docs/tasks.md)."""

from objectives.tasks.description import TaskDescription

DESCRIPTION = TaskDescription(
    name="capacity",
    metric="bits",
    value_format="{:.1f} bits",
    size_field="budget",
    per_param=True,
    summary=(
        "**Task**: per-parameter capacity (Collins, Sohl-Dickstein & Sussillo, ICLR 2017). The "
        "network memorises `b` random binary labels of {n_in}-bit inputs shown at the first of "
        "{unroll} steps; the value is the mutual information between true and predicted "
        "labels, in bits: `b * (1 - H2(p))`."
    ),
    table="best",
    study="objectives.tasks.capacity.study.CapacityStudy",
    sizes="budgets",
    note_setup="**Cell**: {arch}; **budget**: {budget} parameters; hidden units: {hidden}.",
    note_best=(
        "**Best so far**: {value:.1f} bits = **{bits_per_param:.3f} bits/param** (trial "
        "{number}: depth {depth}, {num_params} parameters, b = {b}, error fraction "
        "{error_fraction:.4f}). {complete} of {target} trials complete."
    ),
    note_export=(
        "**Export**: `hpsearch export --storage {url} --arch {arch} --budget {budget} --table "
        "all` (add `--format latex` for a paper); figures: `hpsearch plot --out figures/`."
    ),
)
