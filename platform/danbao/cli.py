"""The ``danbao`` command: a Flask CLI group in the style of Superset's.

    danbao demo [--port N] [--instance DIR] [--size N]
    danbao daily [--as-of YYYY-MM-DD]
    danbao pack validate PATH...
    danbao db plan | danbao db upgrade [--allow-destructive]
    danbao fab ...            (Flask-AppBuilder's own commands)
"""
from __future__ import annotations

import datetime as dt
import os
import secrets
import sys
from pathlib import Path

import click
from flask.cli import FlaskGroup

from danbao.config import Settings


def _settings(instance: str | None = None) -> Settings:
    return Settings.from_env(instance)


def _create_app(*_args, **_kwargs):
    from danbao.app import create_app
    settings = _settings()
    settings.scheduler = False      # `danbao fab ...` runs one command; no background scans
    return create_app(settings)


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False, add_version_option=False)
def main():
    """Danbao (担保) — metadata-driven platform for financing-guarantee companies."""


# -- packs ---------------------------------------------------------------------
@main.group(cls=click.Group)
def pack():
    """Metadata packs."""


@pack.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(file_okay=False))
def pack_validate(paths):
    """Check packs (in overlay order); print every problem as file:line: CODE message."""
    from danbao.meta.loader import validate_packs
    errors = validate_packs([Path(p) for p in paths])
    for error in errors:
        click.echo(str(error))
    if errors:
        click.echo(f"{len(errors)} problem(s)", err=True)
        sys.exit(1)
    click.echo("ok: " + ", ".join(paths))


# -- database ----------------------------------------------------------------------
@main.group(cls=click.Group)
def db():
    """Database schema derived from metadata."""


def _plan(settings):
    from danbao.meta.loader import load_packs
    from danbao.model.builder import build_models
    from danbao.model.migrate import plan_migration
    meta = load_packs(settings.packs)
    models = build_models(meta)
    from danbao.model.engine import make_engine
    engine = make_engine(settings.database_url)
    return engine, models, plan_migration(engine, models)


def _packs_or_exit(fn):
    """Turn pack errors and refusals into clean messages and exit codes."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from danbao.meta.loader import PackErrors
        from danbao.model.migrate import MigrationRefused
        try:
            return fn(*args, **kwargs)
        except PackErrors as exc:
            for error in exc.errors:
                click.echo(str(error), err=True)
            sys.exit(1)
        except MigrationRefused as exc:
            click.echo(f"refused: {exc}", err=True)
            sys.exit(2)
    return wrapper


@db.command("plan")
@click.option("--instance", default=None, help="instance folder (default ./instance or DANBAO_INSTANCE)")
@_packs_or_exit
def db_plan(instance):
    """Print the schema changes the current metadata implies."""
    settings = _settings(instance)
    _engine, _models, plan = _plan(settings)
    if not plan.operations:
        click.echo("no changes")
        return
    for op in plan.operations:
        click.echo(op.line("en"))


@db.command("upgrade")
@click.option("--allow-destructive", is_flag=True, help="apply drops and renames (a backup is made first)")
@click.option("--instance", default=None)
@_packs_or_exit
def db_upgrade(allow_destructive, instance):
    """Apply the planned schema changes."""
    from danbao.model.migrate import apply_migration
    settings = _settings(instance)
    engine, _models, plan = _plan(settings)
    if not plan.operations:
        click.echo("no changes")
        return
    result = apply_migration(engine, plan, allow_destructive=allow_destructive, backup_dir=settings.backups_dir)
    for op in plan.operations:
        click.echo(f"applied: {op.describe('en')}")
    if getattr(result, "backup", None):
        click.echo(f"backup: {result.backup}")


def _as_of(raw: str | None):
    """The ``--as-of`` day (today in DANBAO_TIMEZONE when not given); exit 2 on a bad date."""
    from danbao.config import local_tz
    try:
        return dt.date.fromisoformat(raw) if raw else dt.datetime.now(local_tz()).date()
    except ValueError:
        click.echo(f"--as-of: not a date (YYYY-MM-DD): {raw}", err=True)
        sys.exit(2)


# -- warnings ---------------------------------------------------------------------
@main.group(cls=click.Group)
def warnings():
    """Warning rules (预警)."""


@warnings.command("scan")
@click.option("--as-of", "as_of", default=None, help="the day to scan as (YYYY-MM-DD; default today)")
@click.option("--rule", "rules", multiple=True, help="only these rule codes")
@click.option("--instance", default=None)
@_packs_or_exit
def warnings_scan(as_of, rules, instance):
    """Check every active rule over its whole table; open, keep or close warnings."""
    from sqlalchemy.orm import Session
    from danbao.engines.warnings import scan
    from danbao.model.migrate import ensure_schema
    settings = _settings(instance)
    day = _as_of(as_of)
    engine, models, _plan_unused = _plan(settings)
    ensure_schema(engine, models)
    with Session(engine) as session:
        for r in scan(session, models, models.meta, as_of=day, rules=list(rules) or None):
            click.echo(f"{r.rule}: {r.matched} matching, {r.opened} opened, {r.closed} closed")


# -- the business's daily run -------------------------------------------------------
@main.command("daily", with_appcontext=False)
@click.option("--as-of", "as_of", default=None, help="the day to run as (YYYY-MM-DD; default today)")
@click.option("--instance", default=None)
@_packs_or_exit
def daily(as_of, instance):
    """Overdue projects, five-level class by days overdue, customer exposures (the scheduler does this daily)."""
    from sqlalchemy.orm import Session
    from danbao.engines.business import daily_run
    from danbao.model.migrate import ensure_schema
    settings = _settings(instance)
    day = _as_of(as_of)
    engine, models, _plan_unused = _plan(settings)
    ensure_schema(engine, models)
    with Session(engine) as session:
        counts = daily_run(session, models, models.meta, day)
    click.echo(", ".join(f"{k}: {v}" for k, v in counts.items()) or "no project entity: nothing to do")


# -- demo ----------------------------------------------------------------------------
@main.command(with_appcontext=False)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--instance", default=None, help="instance folder (default ./instance)")
@click.option("--size", default=50, show_default=True, type=click.IntRange(1, 100000),
              help="how many demo projects to generate (with N/2 companies and N/5 individuals)")
@click.option("--no-serve", is_flag=True, help="prepare the database and exit")
def demo(port, instance, size, no_serve):
    """Create (if absent) a SQLite demo in the instance folder and serve it on 127.0.0.1."""
    from danbao.app import create_app
    from danbao.demo import ensure_admin, ensure_departments, ensure_staff, load_demo_data, start_demo_workflows
    settings = _settings(instance)
    if "DANBAO_DATABASE_URL" not in os.environ:
        settings.database_url = f"sqlite:///{settings.instance_dir / 'danbao.db'}"
    settings.scheduler = settings.scheduler and not no_serve   # DANBAO_SCHEDULER, on by default
    try:
        app = create_app(settings)
    except Exception as exc:  # pack errors or refused migrations: say what, not a traceback
        from danbao.meta.loader import PackErrors
        if isinstance(exc, PackErrors):
            for error in exc.errors:
                click.echo(str(error), err=True)
            sys.exit(1)
        raise
    with app.app_context():
        password = os.environ.get("DANBAO_ADMIN_PASSWORD")
        generated = password is None
        password = password or secrets.token_urlsafe(12)
        created = ensure_admin(app, password)
        staff = ensure_staff(app, password)
        ensure_departments(app)
        if staff:
            click.echo(f"demo staff (same password as admin): {', '.join(staff)}")
        if created and generated:
            click.echo(f"admin password (shown once): {password}")
            (settings.instance_dir / "admin_password.txt").unlink(missing_ok=True)
        elif not created:
            click.echo("admin user exists; password unchanged")
        from danbao.config import local_tz
        today = dt.datetime.now(local_tz()).date()
        loaded = load_demo_data(app, size=size, today=today)
        if loaded.records:
            click.echo(f"demo data: {loaded.records} records; projects by stage: "
                       + ", ".join(f"{stage} {n}" for stage, n in sorted(loaded.stages.items())))
            from danbao.engines.warnings import scan
            rt = app.extensions["danbao"]
            opened = sum(r.opened for r in scan(rt.session, rt.models, rt.meta, as_of=today))
            click.echo(f"warnings opened: {opened}")
            click.echo(f"approvals started: {start_demo_workflows(rt, loaded.submit)}")
    click.echo(f"Danbao demo: http://127.0.0.1:{port}/  (user admin)  instance: {settings.instance_dir}")
    if not no_serve:
        from werkzeug.serving import run_simple
        from danbao.web.switch import AppSwitcher
        first = [app]
        switcher = AppSwitcher(lambda meta=None: first.pop() if first else create_app(settings, meta=meta))
        run_simple("127.0.0.1", port, switcher, threaded=True, use_reloader=False)


# -- FAB passthrough -------------------------------------------------------------------
def _add_fab_commands():
    try:
        from flask_appbuilder.cli import fab
    except ImportError:  # pragma: no cover
        return
    main.add_command(fab, "fab")


_add_fab_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
