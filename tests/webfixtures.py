"""Helpers for web tests: an app on the test database, users per role, logins."""
from __future__ import annotations

import re
from pathlib import Path

from danbao.app import create_app
from danbao.config import Settings

PASSWORD = "Secret-123"


def make_app(database_url: str, instance: Path, packs=None, **extra):
    from conftest import CORE_PACK
    settings = Settings(instance_dir=instance, database_url=database_url,
                        packs=tuple(packs or (CORE_PACK,)), secret_key="test-secret-0123456789abcdef0123456789", testing=True,
                        extra={"WTF_CSRF_ENABLED": False, **extra})
    return create_app(settings)


def add_user(app, username: str, role: str) -> int:
    with app.app_context():
        sm = app.appbuilder.sm
        r = sm.find_role(role) or sm.add_role(role)
        user = sm.add_user(username, username, "测试", f"{username}@example.com", r, PASSWORD)
        return user.id


def login(client, username: str):
    resp = client.post("/login/", data={"username": username, "password": PASSWORD}, follow_redirects=False)
    assert resp.status_code in (302, 303), resp.data[:500]
    return client


def jwt(client, username: str) -> dict:
    resp = client.post("/api/v1/security/login", json={"username": username, "password": PASSWORD, "provider": "db"})
    assert resp.status_code == 200, resp.data
    return {"Authorization": f"Bearer {resp.get_json()['access_token']}"}


def csrf_from(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*?value="([^"]+)"', html).group(1)


def staffed_app(database_url: str, instance: Path, users: dict[str, str]):
    """The core pack's app with ``users`` (name -> role), their ids (``app.ids``)
    and REST tokens (``app.tokens``); a generator for module fixtures, disposed after."""
    from wfapifixtures import dispose
    app = make_app(database_url, instance)
    app.ids = {name: add_user(app, name, role) for name, role in users.items()}
    client = app.test_client()
    app.tokens = {name: jwt(client, name) for name in users}
    yield app
    dispose(app)
