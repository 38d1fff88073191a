"""Build one Danbao runtime: packs → Meta → models → schema → Flask-AppBuilder app.

``create_app`` is the only place the layers meet. A metadata change builds a
new app with this function and swaps it in (see web/switch.py); a live app
is never patched.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Flask
from flask_appbuilder import AppBuilder
from flask_appbuilder.models.sqla.base import SQLA
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_wtf.csrf import CSRFProtect

from danbao.config import Settings
from danbao.engines.attachments import AttachmentStore
from danbao.meta.loader import load_packs
from danbao.meta.model import Label, Meta
from danbao.model.builder import build_models
from danbao.model.engine import configure_engine
from danbao.model.migrate import ensure_schema
from danbao import plugins
from danbao.web import access
from danbao.web.api import register_api
from danbao.web.errors import register_error_pages
from danbao.web.i18n import LazyLabel
from danbao.web import inbox as inbox_view
from danbao.web.inbox import WarningInbox
from danbao.web.views import EntityView
from danbao.web.metadata_admin import MetadataAdmin
from danbao.web import workflow_views
from danbao.web import ledger_api  # noqa: F401  (adds the /ledger routes to the API blueprint)
from danbao.web import documents_api  # noqa: F401  (adds the attachment tag and documents routes)
from danbao.web import ledger_views, regulatory_views
from danbao.web.ledger_views import LedgerView
from danbao.web.regulatory_views import RegulatoryView
from danbao.web.scores import ScoreView
from danbao.web.workflow_views import WorkflowView
from danbao.web.workbench import Workbench

log = logging.getLogger(__name__)
METADATA_MENU_LABEL = Label("元数据与数据库", "Metadata and database")
PACKAGE_DIR = Path(__file__).resolve().parent


class DanbaoSecurityManager(SecurityManager):
    """FAB's security manager without the user-statistics chart (it loads Google Charts)."""
    userstatschartview = None


@dataclass
class Runtime:
    """What the web layer needs per request, built once per Meta."""
    meta: Meta
    models: object
    db: SQLA
    store: AttachmentStore
    settings: Settings

    @property
    def session(self):
        return self.db.session


def fab_config(settings: Settings, meta: Meta) -> dict:
    return {
        "SQLALCHEMY_DATABASE_URI": settings.database_url,
        "SQLALCHEMY_TRACK_MODIFICATIONS": False,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "SECRET_KEY": settings.secret_key,
        "APP_NAME": "担保业务平台 Danbao",
        "AUTH_TYPE": 1,                     # AUTH_DB
        "AUTH_ROLE_ADMIN": access.ADMIN_ROLE,
        "AUTH_ROLE_PUBLIC": "Public",
        "FAB_ROLES": _fab_roles(meta),
        "FAB_UPDATE_PERMS": False,          # permission rows are synced by access.sync_permission_rows
        "FAB_ADD_SECURITY_API": False,   # its user/role APIs break on marshmallow 4; login API stays
        "FAB_API_SWAGGER_UI": False,
        "FAB_INDEX_VIEW": "danbao.web.workbench.WorkbenchIndex",
        "FAB_SECURITY_MANAGER_CLASS": "danbao.app.DanbaoSecurityManager",
        "BABEL_DEFAULT_LOCALE": "zh",
        "BABEL_TRANSLATION_DIRECTORIES": str(PACKAGE_DIR / "translations"),
        "LANGUAGES": {"zh": {"flag": "cn", "name": "中文"}, "en": {"flag": "gb", "name": "English"}},
        "WTF_CSRF_ENABLED": True,
        "WTF_CSRF_TIME_LIMIT": None,
        "MAX_CONTENT_LENGTH": settings.max_upload_mb * 1024 * 1024 + 1024 * 1024,
        "TESTING": settings.testing,
        "JWT_ACCESS_TOKEN_EXPIRES": 3600 * 8,
        "RATELIMIT_ENABLED": False,
    }


def _fab_roles(meta: Meta) -> dict[str, list[list[str]]]:
    """The metadata roles' grants, plus the menu entries of the dashboard and the pending ledger."""
    roles = access.fab_roles(meta)
    for extra in (regulatory_views.role_grants(meta), ledger_views.role_grants(meta)):
        for role, grants in extra.items():
            roles.setdefault(role, []).extend(grants)
    return roles


def create_app(settings: Settings, *, meta: Meta | None = None) -> Flask:
    """Build the whole runtime; raises PackErrors or MigrationRefused before serving anything."""
    meta = meta or load_packs(settings.packs)
    models = build_models(meta)
    settings.instance_dir.mkdir(parents=True, exist_ok=True)

    app = Flask("danbao", template_folder=str(PACKAGE_DIR.parent.parent / "templates"),
                instance_path=str(settings.instance_dir))
    app.config.update(fab_config(settings, meta))
    app.config.update(settings.extra)
    # Our templates (package) come after the repo's templates/ folder, which may override them.
    app.jinja_loader.searchpath.append(str(PACKAGE_DIR / "web" / "templates"))
    csrf = CSRFProtect()
    # sessions live for one request; not expiring on commit saves re-reading what was just written
    db = SQLA(session_options={"expire_on_commit": False})
    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
        ensure_schema(db.engine, models)
        appbuilder = AppBuilder()
        appbuilder.init_app(app, db.session)
        csrf.init_app(app)
        runtime = Runtime(meta=meta, models=models, db=db, settings=settings,
                          store=AttachmentStore(settings.attachments_dir, models.system["danbao_attachment"],
                                                max_upload_mb=settings.max_upload_mb))
        app.extensions["danbao"] = runtime
        app.register_blueprint(Blueprint("danbao_static", __name__, static_folder=str(PACKAGE_DIR / "web" / "static" / "danbao"),
                                         static_url_path="/danbao-static"))
        appbuilder.add_view_no_menu(EntityView())
        appbuilder.add_view_no_menu(Workbench())
        appbuilder.add_view_no_menu(ScoreView())
        appbuilder.add_view(MetadataAdmin(), "danbao_metadata", label=LazyLabel(METADATA_MENU_LABEL), icon="fa-sitemap",
                            category="Security")
        _add_menus(appbuilder, meta)
        if meta.workflows:
            appbuilder.add_view(WorkflowView(), "danbao_tasks", label=LazyLabel(workflow_views.MENU_LABEL),
                                icon="fa-tasks")
            workflow_views.register_badge(app)
        if regulatory_views.configured(meta):
            appbuilder.add_view(RegulatoryView(), regulatory_views.MENU_NAME,
                                label=LazyLabel(regulatory_views.MENU_LABEL), icon="fa-tachometer-alt")
        if ledger_views.configured(meta):
            appbuilder.add_view(LedgerView(), ledger_views.MENU_NAME, label=LazyLabel(ledger_views.MENU_LABEL),
                                icon="fa-file-invoice-dollar")
            ledger_views.register_badge(app)
        appbuilder.add_view(WarningInbox(), inbox_view.MENU_NAME, label=LazyLabel(inbox_view.MENU_LABEL),
                            icon="fa-bell")
        inbox_view.register_badge(app)
        register_api(app, csrf)
        # a REST client logs in for a JWT without a form page to take a CSRF token from
        if "SecurityApi" in app.blueprints:
            csrf.exempt(app.blueprints["SecurityApi"])
        register_error_pages(app)
        access.sync_permission_rows(appbuilder.sm, meta)
        plugins.load_plugins(app, runtime)
        if settings.scheduler:      # last: a build that fails leaves no scheduler behind
            from danbao.scheduler import start_for
            start_for(app, runtime)
    return app


def _add_menus(appbuilder: AppBuilder, meta: Meta) -> None:
    menus = sorted(meta.menus.values(), key=lambda m: (m.order, m.key))
    for menu in menus:
        for em in meta.entities.values():
            if em.menu != menu.key or em.is_child:
                continue
            appbuilder.add_link(name=access.view_name(em.name), href=f"/e/{em.name}/", icon=em.icon,
                                label=LazyLabel(em.label), category=menu.key,
                                category_label=LazyLabel(menu.label), category_icon=menu.icon)
