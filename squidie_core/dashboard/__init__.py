"""SquidSonar: a web dashboard on Squidie's inspection API.

Public surface:

- ``create_app(engine, config=None, *, token=None)``: the dashboard as a Starlette ASGI
  app, to serve with uvicorn or mount inside a host app.
- ``DashboardConfig``: its options (operator token, refresh, page size, sampling).
- ``serve(engine, config, host=..., port=...)``: run it under uvicorn (what
  ``squidie dashboard`` does).
- ``ACTIONS``: the run commands the dashboard offers.

Needs the ``dashboard`` extra (``pip install 'squidie[dashboard]'``). See
``docs/dashboard.md``.
"""

from squidie_core.dashboard._app import ACTIONS, DashboardConfig, create_app
from squidie_core.dashboard._serve import serve

__all__ = ["ACTIONS", "DashboardConfig", "create_app", "serve"]
