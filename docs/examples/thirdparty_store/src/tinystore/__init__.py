"""tinystore: a small third-party Squidie store kept in one JSON file.

Public surface: ``TinyStore`` (the store), ``open_store`` (the factory its plugin
declares). See ``tinystore._store`` for features, the URL format and options.
"""

from tinystore._store import TinyStore, open_store

__all__ = ["TinyStore", "open_store"]
