"""Which studies are runs of one experiment, never to be pooled.

Studies of the same settings that differ only in how they were searched (their tag, sampler,
pruner, seed or target: a sampler comparison, replicate seeds) are runs of one experiment.
The report measures each run on its own, a row per run, labelled by its tag: never the best
of them, never their trials together. A study's run is its tag where the tag marks such a run
(somewhere in the storage a study with that tag has a twin), else "".

Tags that name a variant instead (n16, t1, adam: the studies differ in n_in, T, the optimizer)
are the settings the claims compare across, so those studies keep run "" and meet in the
claims' cells as before; studies of one cell that differ in their space (an optimizer or init
scheme fixed, say) count as the best the search found there.
"""

from __future__ import annotations

from collections.abc import Sequence

from hpsearch.studies.records import PRUNER_KEY, SAMPLER_KEY, SEED_KEY, TARGET_KEY, StudyRecord

# Study attrs that say how a study was searched, not what.
SEARCH_KEYS = frozenset({SAMPLER_KEY, PRUNER_KEY, SEED_KEY, TARGET_KEY, "tag"})


def tag_of(record: StudyRecord) -> str:
    return str(record.attrs.get("tag", ""))


def settings_key(record: StudyRecord) -> str:
    """What a study searches: all its attrs but how it was searched."""
    return repr(sorted((k, repr(v)) for k, v in record.attrs.items() if k not in SEARCH_KEYS))


def runs(records: Sequence[StudyRecord]) -> dict[str, str]:
    """The run of each study, by study name. A tag that marks a run at one budget marks it
    at every budget, so that a sampler comparison is one run per tag across its budgets."""
    groups: dict[str, list[StudyRecord]] = {}
    for record in records:
        groups.setdefault(settings_key(record), []).append(record)
    run_tags = {tag_of(r) for group in groups.values() if len(group) > 1 for r in group}
    return {r.name: tag_of(r) if tag_of(r) in run_tags else "" for r in records}
