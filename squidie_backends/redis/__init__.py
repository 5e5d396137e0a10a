"""The Redis Streams store (``redis://``, ``rediss://``).

Public surface: ``RedisStore`` (the store), ``RedisClock`` (its server clock),
``doctor`` and ``Finding`` (configuration checks for ``squidie doctor``).
See ``docs/backends/redis.md``.
"""

from squidie_backends.redis._clock import RedisClock
from squidie_backends.redis._doctor import Finding, doctor
from squidie_backends.redis._store import RedisStore

__all__ = ["Finding", "RedisClock", "RedisStore", "doctor"]
