"""Serving the dashboard with uvicorn (the ``squidie dashboard`` command)."""

from __future__ import annotations

import signal
import threading

from squidie_core._runtime import Squidie
from squidie_core.dashboard._app import DashboardConfig, create_app

__all__ = ["serve"]


def serve(engine: Squidie, config: DashboardConfig, *, host: str = "127.0.0.1",
          port: int = 8765, log_level: str = "warning") -> None:
    """Serve the dashboard for ``engine`` until SIGINT/SIGTERM, then return.

    uvicorn shuts down gracefully on the signal and then re-raises it to the handler
    that was in place before; in the main thread that handler is a no-op here, so a
    stopped dashboard exits with status 0 like a stopped worker.
    """
    import uvicorn

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda signum, frame: None)
    try:
        uvicorn.run(create_app(engine, config), host=host, port=port, log_level=log_level,
                    access_log=False, lifespan="on")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
