"""Swap in a runtime built from new metadata without restarting the server.

FAB views can only be added before an app's first request, so a metadata
change never patches the live app: ``AppSwitcher.reload`` builds a whole new
app beside it (validation, models, schema, views) and, only if that
succeeds, points new requests at it. Requests already running finish on the
old one. A failed build leaves the running app untouched. Background work
bound to the old app (its warning scheduler) is stopped at the swap.
"""
from __future__ import annotations

import threading
from typing import Callable

from flask import Flask

from danbao.scheduler import stop_for


class AppSwitcher:
    def __init__(self, build: Callable[..., Flask]):
        self._build = build
        self._lock = threading.Lock()
        self.app = self._adopt(build())
        self.generation = 1

    def _adopt(self, app: Flask) -> Flask:
        app.extensions["danbao_switcher"] = self
        return app

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)

    def reload(self, **kwargs) -> Flask:
        """Build a new app (raising whatever the build raises) and make it current."""
        with self._lock:
            app = self._adopt(self._build(**kwargs))
            old, self.app = self.app, app
            self.generation += 1
            stop_for(old)      # the new app scans under the new rules; the old one stops
            return app
