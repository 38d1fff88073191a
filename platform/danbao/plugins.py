"""Plugin hook: every module in the repo's ``plugins/`` folder (or DANBAO_PLUGINS) is imported
at start, and its ``register(app, runtime)`` called if it has one.

A failing plugin stops the start with a message naming it, rather than
leaving half a runtime behind.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from danbao.config import REPO_ROOT


class PluginError(RuntimeError):
    pass


def plugin_dirs() -> list[Path]:
    extra = os.environ.get("DANBAO_PLUGINS")
    dirs = [Path(p) for p in extra.split(os.pathsep)] if extra else []
    return dirs + [REPO_ROOT / "plugins"]


def load_plugins(app, runtime) -> list[str]:
    loaded = []
    for folder in plugin_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_"):
                continue
            name = f"danbao_plugin_{path.stem}"
            try:
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                if hasattr(module, "register"):
                    module.register(app, runtime)
            except Exception as exc:  # the message must name the plugin
                raise PluginError(f"plugin {path}: {type(exc).__name__}: {exc}") from exc
            loaded.append(path.stem)
    app.extensions["danbao_plugins"] = loaded
    return loaded
