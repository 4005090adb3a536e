"""Database policy: storage URLs, engines, heartbeats, trial slots, and error translation.

Never imports hpsearch or objectives.
"""

from storage.errors import StorageError
from storage.heartbeat import Heartbeat, fail_orphaned_trials
from storage.rdb import HeartbeatPolicy, open_storage, upgrade_schema
from storage.retry import is_transient, retry_transient
from storage.slots import trial_slot
from storage.url import (
    DEFAULT_URL,
    ENV_VAR,
    PASSWORD_FILE_VAR,
    normalize_url,
    read_secret,
    redact_url,
    resolve_url,
)

__all__ = [
    "DEFAULT_URL",
    "ENV_VAR",
    "PASSWORD_FILE_VAR",
    "Heartbeat",
    "HeartbeatPolicy",
    "StorageError",
    "fail_orphaned_trials",
    "is_transient",
    "normalize_url",
    "open_storage",
    "read_secret",
    "redact_url",
    "resolve_url",
    "retry_transient",
    "trial_slot",
    "upgrade_schema",
]
