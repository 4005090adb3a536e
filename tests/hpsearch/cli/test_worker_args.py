"""Which studies `hpsearch worker` works on: --study or --all, each refusal in one line."""

import pytest

from hpsearch.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "needs --study NAME (repeatable) or --all"),
        (["--all", "--study", "capacity-rnn-p300"], "--study and --all: give one, not both"),
    ],
)
def test_study_or_all(sqlite_url, capsys, args, message):
    assert main(["worker", "--storage", sqlite_url, *args]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"hpsearch worker: error: {message}"], err
