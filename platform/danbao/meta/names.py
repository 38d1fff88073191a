"""Which names metadata may use.

Entity and field names become table, column and Python attribute names, so
they must be plain lowercase identifiers and must not collide with SQL
keywords (PostgreSQL's reserved words and SQLite's keywords), Python keywords,
the system columns every table gets, or the attributes SQLAlchemy and
Flask-AppBuilder put on a model. The list is frozen here rather than taken
from the installed SQLAlchemy so that a pack valid today stays valid after an
upgrade.
"""
from __future__ import annotations

import keyword
import re

from danbao.meta.model import SYSTEM_COLUMNS, Label

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

#: PostgreSQL reserved key words (including "can be function or type").
SQL_POSTGRESQL = frozenset("""
all analyse analyze and any array as asc asymmetric authorization binary both case cast
check collate collation column concurrently constraint create cross current_catalog
current_date current_role current_schema current_time current_timestamp current_user
default deferrable desc distinct do else end except false fetch for foreign freeze from
full grant group having ilike in initially inner intersect into is isnull join lateral
leading left like limit localtime localtimestamp natural not notnull null offset on only
or order outer overlaps placing primary references returning right select session_user
similar some symmetric system_user table tablesample then to trailing true union unique
user using variadic verbose when where window with
""".split())

#: SQLite keywords that cannot safely be used unquoted.
SQL_SQLITE = frozenset("""
abort add after alter attach autoincrement before begin between by cascade commit
conflict database deferred delete detach drop each escape exclusive exists explain fail
glob if ignore immediate index indexed insert instead key match of plan pragma query raise
recursive regexp reindex release rename replace restrict rollback row rows savepoint set
temp temporary transaction trigger update vacuum values view virtual without
""".split())

#: Attributes SQLAlchemy's declarative base and Flask-AppBuilder use on models
#: and views, plus the system columns every entity table has.
FRAMEWORK = frozenset({
    "registry", "metadata", "query", "query_class", "security", "menu", "appbuilder",
    "parent", *SYSTEM_COLUMNS,
    # fixed REST paths beside /api/v1/<entity>/: an entity of that name would lose its routes
    "warnings", "tasks", "scores", "openapi",
})

RESERVED_PREFIXES = ("ab_", "danbao_")

RESERVED = SQL_POSTGRESQL | SQL_SQLITE | FRAMEWORK | frozenset(keyword.kwlist)


def unsafe_reason(name) -> str | None:
    """Why ``name`` is not a safe identifier, or None when it is."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        return ("is not a safe name: use lowercase letters, digits and _, "
                "starting with a letter, at most 63 characters")
    return None


def reserved_reason(name: str) -> str | None:
    """Why ``name`` may not name an entity or field, or None when it may."""
    if name in SYSTEM_COLUMNS:
        return "is a system column every table has"
    if name in FRAMEWORK:
        return "is used by SQLAlchemy or Flask-AppBuilder"
    if name in SQL_POSTGRESQL or name in SQL_SQLITE:
        return "is an SQL reserved word"
    if keyword.iskeyword(name):
        return "is a Python keyword"
    for prefix in RESERVED_PREFIXES:
        if name.startswith(prefix):
            return f"starts with '{prefix}', which is reserved for the system"
    return None


#: Engine actions a workflow step may run on entering (``actions: [name]``), by name.
#: Engines register theirs at import; a pack naming any other is refused at load (DB279).
WORKFLOW_ACTIONS: dict[str, Label] = {}


def register_workflow_action(name: str, label: Label) -> None:
    """Make ``name`` usable in a step's ``actions:``; ``label`` says what it does."""
    WORKFLOW_ACTIONS[name] = label


register_workflow_action("generate_fee_schedule", Label("生成收费计划", "Generate the fee schedule"))
register_workflow_action("refresh_exposure", Label("更新敞口", "Refresh exposures"))
register_workflow_action("require_application_documents", Label("核对申请资料", "Require the application documents"))
register_workflow_action("require_contract", Label("核对签约手续", "Require the contracts"))
register_workflow_action("require_loan_started", Label("核对放款日", "Require a loan that has started"))
register_workflow_action("book_drawdown", Label("登记承保与放款", "Book underwriting and the loan"))
register_workflow_action("record_approval", Label("记录批复", "Record the approval decision"))
register_workflow_action("apply_change_request", Label("变更生效", "Apply the change to the project"))
register_workflow_action("require_release", Label("核对解保条件并登记解保", "Require the release conditions and book the release"))
