"""Squidie's storage adapters, one subpackage each.

Each adapter registers itself through the ``squidie`` entry-point group exactly as a
third-party adapter would; nothing here is imported by ``squidie_core``, and no adapter
imports another. Open a store by URL with ``squidie_core.open_store(url)``.

- ``squidie_backends.memory`` — ``memory://``: the in-process reference store.
"""

__all__: list[str] = []
