"""The in-memory reference store (``memory://``).

Public surface: ``MemoryStore``.
"""

from squidie_backends.memory._store import MemoryStore

__all__ = ["MemoryStore"]
