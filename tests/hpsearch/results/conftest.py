"""The results' shared storage: capacity studies with known best trials."""

from __future__ import annotations

import optuna
import pytest

from tests.testing import populated_storage


@pytest.fixture
def storage(sqlite_url: str) -> optuna.storages.BaseStorage:
    return populated_storage(sqlite_url)
