"""docs/results.md is what `hpsearch report` makes from the committed archive of its runs
(docs/archives/results.jsonl.gz), as docs/runs.md says: the same text but for the storage's
name and the date, the same figures' files; and the archive's studies export back to it."""

from __future__ import annotations

import gzip

import pytest

from tests.testing import ROOT, hpsearch

DOCS = ROOT / "docs"
ARCHIVE = DOCS / "archives" / "results.jsonl.gz"


def _without_storage_and_date(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith(("- Storage: ", "- Date: "))]


@pytest.mark.slow
def test_results_md_is_the_report_of_the_committed_archive(tmp_path):
    url = f"sqlite:///{tmp_path / 'results.db'}"
    done = hpsearch("import", str(ARCHIVE), "--storage", url)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "docs"
    done = hpsearch("report", "--storage", url, "--out", str(out), "--name", "results.md")
    assert done.returncode == 0, done.stderr
    made = (out / "results.md").read_text()
    assert _without_storage_and_date(made) == _without_storage_and_date(
        (DOCS / "results.md").read_text()
    )
    for png in out.glob("*.png"):
        assert (DOCS / png.name).exists(), png.name
        assert f"]({png.name})" in made
    again = tmp_path / "again.jsonl.gz"
    done = hpsearch(
        "export", "--storage", url, "--table", "trials", "--format", "jsonl", "--out", str(again)
    )
    assert done.returncode == 0, done.stderr
    assert gzip.decompress(again.read_bytes()) == gzip.decompress(ARCHIVE.read_bytes())
