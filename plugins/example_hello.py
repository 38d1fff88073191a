"""An example plugin: adds a /plugins/hello page listing the loaded packs."""
from flask import jsonify


def register(app, runtime):
    @app.get("/plugins/hello")
    def plugins_hello():
        return jsonify(packs=[f"{p.name}@{p.version}" for p in runtime.meta.packs])
