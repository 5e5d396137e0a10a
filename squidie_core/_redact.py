"""Redaction of sensitive metadata before anything is persisted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "SENSITIVE_KEYS", "is_sensitive", "redact"]

REDACTED = "[REDACTED]"

#: Keys whose values never reach storage (case-insensitive; ``-`` and ``_`` alike).
SENSITIVE_KEYS = frozenset(
    {
        "token", "secret", "password", "api_key", "authorization", "credential",
        "private_key", "refresh_token", "access_token",
    }
)


def is_sensitive(key: str) -> bool:
    """Whether a key names a secret: one of ``SENSITIVE_KEYS`` or ending in ``_<one>``.

    ``"Password"``, ``"db_password"``, ``"X-Api-Key"`` and ``"credentials"`` are
    sensitive; ``"token_count"`` is not.
    """
    norm = key.strip().lower().replace("-", "_")
    if norm.endswith("s") and norm[:-1] in SENSITIVE_KEYS:
        norm = norm[:-1]
    return norm in SENSITIVE_KEYS or any(norm.endswith("_" + k) for k in SENSITIVE_KEYS)


def redact(value: Any) -> Any:
    """Return a copy of ``value`` with every sensitive key's value replaced, recursively."""
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and is_sensitive(k) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value
