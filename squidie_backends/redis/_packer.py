"""The command packer the store's connections use: hiredis's, called directly.

redis-py, with hiredis installed, still encodes every argument in Python before hiredis
packs them (a memoryview scan, then one ``Encoder.encode`` call per argument): about
14 µs of a script call's 20-odd arguments, a quarter of its client CPU. This packer hands
the arguments to ``hiredis.pack_command`` as they are when each is a ``str``, ``bytes``
or ``int`` (what the store sends) and the command name is one word, which gives the same
bytes on the wire. Anything else (a float, a bool, ``None``, a two-word command such as
``SCRIPT LOAD``) goes through redis-py's own Python packer, so its encoding and its
errors are redis-py's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis._parsers.encoders import Encoder
from redis.connection import PythonRespSerializer

_pack_command: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _pack_command
except ImportError:  # pragma: no cover - hiredis comes with the ``redis`` extra
    _pack_command = None

__all__ = ["command_packer"]

_PLAIN = frozenset({str, bytes, int})
# redis-py's own chunking threshold for large arguments (its Connection default).
_BUFFER_CUTOFF = 6000


class _HiredisPacker:
    """``pack(*args)`` as redis-py's connections call it: a list of byte chunks."""

    def __init__(self, pack_command: Callable[[tuple[Any, ...]], bytes]) -> None:
        self._pack_command = pack_command
        self._fallback = PythonRespSerializer(
            _BUFFER_CUTOFF, Encoder("utf-8", "strict", False).encode  # type: ignore[no-untyped-call]
        )

    def pack(self, *args: Any) -> list[bytes]:
        name = args[0]
        if type(name) is str and " " not in name:
            for arg in args:
                if type(arg) not in _PLAIN:
                    break
            else:
                return [self._pack_command(args)]
        return list(self._fallback.pack(*args))  # type: ignore[no-untyped-call]


def command_packer() -> _HiredisPacker | None:
    """A packer for ``redis.Connection(command_packer=...)``; ``None`` (redis-py's
    default) without hiredis."""
    return None if _pack_command is None else _HiredisPacker(_pack_command)
