"""Database policy: storage URLs, engines, heartbeats, trial slots, and error translation.

Never imports hpsearch or objectives.
"""

from storage.errors import StorageError
from storage.heartbeat import Heartbeat
from storage.rdb import HeartbeatPolicy, open_storage
from storage.slots import trial_slot
from storage.url import DEFAULT_URL, ENV_VAR, normalize_url, redact_url, resolve_url

__all__ = [
    "DEFAULT_URL",
    "ENV_VAR",
    "Heartbeat",
    "HeartbeatPolicy",
    "StorageError",
    "normalize_url",
    "open_storage",
    "redact_url",
    "resolve_url",
    "trial_slot",
]
