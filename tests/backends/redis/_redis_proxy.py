"""A TCP proxy in front of Redis that can lose the reply to a script call.

``proxy.lose_next_reply()`` arms it: the next ``EVALSHA`` a client sends reaches the
server and runs, but its reply is never delivered — the proxy closes that connection
instead. redis-py sees a connection error and resends the command on a new connection:
exactly the "state-changing command sent twice" case every script must survive.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class LossyProxy:
    """Forwards 127.0.0.1:<port> to the Redis server; see the module docstring."""

    def __init__(self, target_host: str = "127.0.0.1", target_port: int = 6379) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._armed = threading.Event()
        self.lost = 0
        self.script_calls = 0
        self._lock = threading.Lock()
        self._closed = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_next_reply(self) -> None:
        """Lose the reply of the next ``EVALSHA`` (once)."""
        self._armed.set()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            with self._lock:
                self._sockets += [client, server]
            doomed = threading.Event()
            threading.Thread(target=self._up, args=(client, server, doomed), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, doomed),
                             daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, doomed: threading.Event) -> None:
        try:
            while data := client.recv(65536):
                if b"EVALSHA" in data.upper():
                    with self._lock:
                        self.script_calls += 1
                    if self._armed.is_set():
                        self._armed.clear()
                        doomed.set()
                server.sendall(data)
        except OSError:
            pass
        finally:
            _close(server)

    def _down(self, server: socket.socket, client: socket.socket, doomed: threading.Event) -> None:
        try:
            while data := server.recv(65536):
                if doomed.is_set():
                    with self._lock:
                        self.lost += 1
                    break  # the command ran on the server; its reply is lost
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client)
            _close(server)

    def close(self) -> None:
        """Stop accepting and close every connection."""
        self._closed = True
        _close(self._listener)
        with self._lock:
            for s in self._sockets:
                _close(s)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
