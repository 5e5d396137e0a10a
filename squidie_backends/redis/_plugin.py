"""Entry-point module of the Redis backend: declares it, imports nothing heavy.

redis-py and the store module are imported only when a ``redis://`` or ``rediss://`` URL
is opened; without redis-py installed, opening one says ``pip install 'squidie[redis]'``.
"""

from __future__ import annotations

from typing import Any

from squidie_core.hookspecs import BackendInfo, hookimpl
from squidie_core.storage import Capabilities

#: Kept equal to ``_store.CAPABILITIES`` (a test checks it) without importing redis-py.
CAPABILITIES = Capabilities(
    durable=True,
    multi_process=True,
    multi_node=True,
    server_clock=True,
    priorities=False,
    wake_up=True,
    visibility_precision=0.001,
)


@hookimpl
def squidie_register_backends() -> list[BackendInfo]:
    """Declare the ``redis://`` and ``rediss://`` backend."""
    return [
        BackendInfo(
            name="redis",
            schemes=("redis", "rediss"),
            factory="squidie_backends.redis._plugin:open_store",
            requires=("redis",),
            extra="redis",
            description="Redis Streams: lease delivery and journal on Redis 7.0+",
            capabilities=CAPABILITIES,
            doctor="squidie_backends.redis._plugin:doctor_findings",
        )
    ]


def open_store(url: str, **options: Any) -> Any:
    """Open a Redis store (options: see ``squidie_backends.redis.RedisStore``)."""
    from squidie_backends.redis._store import RedisStore

    return RedisStore(url, **options)


def doctor_findings(url: str, **options: Any) -> list[dict[str, Any]]:
    """``squidie doctor``: the server's version and what its persistence guarantees."""
    from squidie_backends.redis._doctor import doctor
    from squidie_backends.redis._store import RedisStore

    store = RedisStore(url, **options)
    try:
        return [{"level": f.level, "check": f.code, "detail": f.message}
                for f in doctor(store)]
    finally:
        store.close()
