"""Safety verdicts: may a step run by itself, only with a flag, or not at all?

Principle 5 — no metadata change may lose a row or a value silently — decides:

* **safe** — create a table; add a nullable column; add or drop an index; add
  a unique index or a foreign key the data already satisfies; relax NOT NULL;
  widen a type (longer string, string → text, integer → bigint, more digits on
  either side of the decimal point); any type change of a column that holds no
  value at all.
* **destructive** (needs ``allow_destructive``; a backup is made first) — drop
  a column or table; rename a table or column (data is kept, but code and
  reports using the old name break); and every narrowing or cross-kind type
  change whose existing data all fits. Our judgement: such a change loses no
  value today, but it is not additive and it limits what can be stored from
  now on (and text → number drops leading zeros), so a person confirms it.
* **blocked** — a type change some existing value does not survive (too long,
  too many digits, decimals that would be rounded away, text that is not a
  number), changing to boolean/date/datetime or between date and datetime
  while values exist, a unique index over duplicates, a foreign key over
  dangling references, NOT NULL over NULLs or added to a table with rows, a
  table name already taken by a table Danbao does not manage. The reason names
  the table, the column and how many rows are in the way.

Checks run against the database-side names (before renames are applied).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa

from danbao.meta.model import Label
from danbao.model.operations import BLOCKED, DESTRUCTIVE, SAFE, Operation

_INT_RE = re.compile(r"\s*[-+]?[0-9]+\s*", re.ASCII)
_DEC_RE = re.compile(r"\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*", re.ASCII)


@dataclass(frozen=True)
class Shape:
    """The parts of a column type that decide what values fit."""
    kind: str                   # string text integer numeric boolean date datetime other
    length: float = math.inf    # string: characters
    bits: int = 64              # integer
    precision: float = math.inf
    scale: float = math.inf

    @property
    def int_digits(self) -> float:
        if self.kind == "integer":
            return 19 if self.bits >= 64 else (10 if self.bits >= 32 else 5)
        return self.precision - self.scale if self.precision != math.inf else math.inf

    @property
    def int_max(self) -> int:
        return 2 ** (self.bits - 1) - 1


def shape(t) -> Shape:
    if isinstance(t, sa.Boolean):
        return Shape("boolean")
    if isinstance(t, sa.DateTime):
        return Shape("datetime")
    if isinstance(t, sa.Date):
        return Shape("date")
    if isinstance(t, sa.Float):
        return Shape("other")
    if isinstance(t, sa.Numeric):
        p = math.inf if t.precision is None else t.precision
        s = (0 if t.precision is not None else math.inf) if t.scale is None else t.scale
        return Shape("numeric", precision=p, scale=s)
    if isinstance(t, sa.Integer):
        bits = 64 if isinstance(t, sa.BigInteger) else 16 if isinstance(t, sa.SmallInteger) else 32
        return Shape("integer", bits=bits)
    if isinstance(t, sa.String):
        return Shape("text") if t.length is None else Shape("string", length=t.length)
    return Shape("other")


def widens(old: Shape, new: Shape) -> bool:
    """True when every value of ``old`` fits ``new`` unchanged."""
    if old.kind in ("string", "text") and new.kind in ("string", "text"):
        return new.length >= old.length
    if old.kind == "integer" and new.kind == "integer":
        return new.bits >= old.bits
    if old.kind == "integer" and new.kind == "numeric":
        return new.int_digits >= old.int_digits
    if old.kind == "numeric" and new.kind == "numeric":
        return new.scale >= old.scale and new.int_digits >= old.int_digits
    return old.kind == new.kind and old.kind in ("boolean", "date", "datetime")


def _count(conn, query) -> int:
    return int(conn.execute(query).scalar() or 0)


def _col(db_table: str, db_column: str):
    t = sa.table(db_table, sa.column(db_column))
    return t, t.c[db_column]


def _label(op: Operation, zh: str, en: str) -> Label:
    where = f"{op.table}.{op.column}" if op.column else op.table
    return Label(f"{where}：{zh}", f"{where}: {en}")


# -- type changes ---------------------------------------------------------

def _text_values(conn, t, c):
    for value in conn.execute(sa.select(c).where(c.isnot(None))).scalars():
        yield value if isinstance(value, str) else str(value)


def _problems(conn, op: Operation, old: Shape, new: Shape, t, c) -> list[Label] | None:
    """What existing values would not survive; None when the kinds cannot convert."""
    out: list[Label] = []
    if new.kind in ("string", "text"):
        if new.length == math.inf:
            return out
        expr = sa.func.length(c if old.kind in ("string", "text") else sa.cast(c, sa.Text))
        n = _count(conn, sa.select(sa.func.count()).select_from(t).where(expr > new.length))
        if n:
            out.append(_label(op, f"{n} 行的值超过 {new.length} 个字符", f"{n} rows are longer than {new.length} characters"))
        return out
    if new.kind == "integer":
        if old.kind in ("integer", "numeric"):
            frac = 0 if old.kind == "integer" else _count(
                conn, sa.select(sa.func.count()).select_from(t).where(c != sa.func.round(c, 0)))
            big = _count(conn, sa.select(sa.func.count()).select_from(t).where(sa.func.abs(c) > new.int_max))
        elif old.kind in ("string", "text"):
            frac = big = 0
            for v in _text_values(conn, t, c):
                if not _INT_RE.fullmatch(v):
                    frac += 1
                elif abs(int(v)) > new.int_max:
                    big += 1
        else:
            return None
        if frac:
            what = "不是整数" if old.kind != "numeric" else "有小数部分"
            out.append(_label(op, f"{frac} 行的值{what}",
                              f"{frac} rows hold a value that is not a whole number"))
        if big:
            out.append(_label(op, f"{big} 行的值超出 {new.bits} 位整数范围",
                              f"{big} rows are out of range for a {new.bits}-bit integer"))
        return out
    if new.kind == "numeric":
        limit = Decimal(10) ** int(new.int_digits) if new.int_digits != math.inf else None
        lost = big = bad = 0
        if old.kind in ("integer", "numeric"):
            if old.kind == "numeric" and new.scale < old.scale:
                lost = _count(conn, sa.select(sa.func.count()).select_from(t)
                              .where(c != sa.func.round(c, int(new.scale))))
            if limit is not None and new.int_digits < old.int_digits:
                big = _count(conn, sa.select(sa.func.count()).select_from(t).where(sa.func.abs(c) >= limit))
        elif old.kind in ("string", "text"):
            for v in _text_values(conn, t, c):
                try:
                    d = Decimal(v.strip()) if _DEC_RE.fullmatch(v) else None
                except InvalidOperation:  # pragma: no cover - the regex admits only numbers
                    d = None
                if d is None:
                    bad += 1
                elif new.scale != math.inf and d != round(d, int(new.scale)):
                    lost += 1
                elif limit is not None and abs(d) >= limit:
                    big += 1
        else:
            return None
        if bad:
            out.append(_label(op, f"{bad} 行的值不是数字", f"{bad} rows hold a value that is not a number"))
        if lost:
            out.append(_label(op, f"{lost} 行的值小数位多于 {int(new.scale)} 位，会被舍入",
                              f"{lost} rows have more than {int(new.scale)} decimal places and would be rounded"))
        if big:
            out.append(_label(op, f"{big} 行的值整数部分超过 {int(new.int_digits)} 位",
                              f"{big} rows have more than {int(new.int_digits)} digits before the decimal point"))
        return out
    return None


def _pg_using(op: Operation, old: Shape, new: Shape, empty: bool, dialect) -> str | None:
    """PostgreSQL's USING clause: how old values become new ones."""
    quoted = dialect.identifier_preparer.quote(op.payload["db_column"])
    if empty:
        return "NULL"
    new_sql = op.payload["new"].compile(dialect=dialect)
    if new.kind in ("string", "text") and old.kind not in ("string", "text"):
        return f"CAST({quoted} AS TEXT)"   # then assigned to VARCHAR(n): too long raises, never truncates
    if new.kind in ("integer", "numeric") and old.kind in ("string", "text"):
        return f"CAST(trim({quoted}) AS {new_sql})"
    if new.kind == "integer" and old.kind == "numeric":
        return f"CAST({quoted} AS {new_sql})"
    return None


def assess_type(conn, op: Operation) -> None:
    old, new = shape(op.payload["old"]), shape(op.payload["new"])
    t, c = _col(op.payload["db_table"], op.payload["db_column"])
    values = _count(conn, sa.select(sa.func.count()).select_from(t).where(c.isnot(None)))
    op.detail["rows"] = values
    op.payload["using"] = _pg_using(op, old, new, values == 0, conn.dialect)
    if values == 0 or widens(old, new):
        op.safety = SAFE
        return
    problems = _problems(conn, op, old, new, t, c)
    if problems is None:
        op.safety = BLOCKED
        op.reason = _label(op, f"{values} 行有值，{old.kind} 不能转换为 {new.kind}；请新增字段并迁移数据",
                           f"{values} rows have a value and {old.kind} cannot be converted to {new.kind}; "
                           "add a new field and copy the data instead")
    elif problems:
        op.safety = BLOCKED
        op.reason = Label("；".join(p.zh for p in problems), "; ".join(p.en for p in problems))
    else:
        op.safety = DESTRUCTIVE
        op.reason = _label(op, f"收窄或转换类型：现有 {values} 个值都能容纳，需要确认",
                           f"narrowing or converting the type: all {values} existing values fit; needs confirmation")


# -- everything else ---------------------------------------------------------

def assess_unique(conn, op: Operation) -> None:
    t = sa.table(op.payload["db_table"], *(sa.column(c) for c in op.payload["db_columns"]))
    cols = list(t.c)
    groups = (sa.select(sa.func.count().label("n")).select_from(t)
              .where(*(c.isnot(None) for c in cols)).group_by(*cols)
              .having(sa.func.count() > 1).subquery())
    dup_values, dup_rows = conn.execute(sa.select(sa.func.count(), sa.func.sum(groups.c.n))).one()
    if dup_values:
        op.safety = BLOCKED
        op.detail["offending"] = int(dup_rows)
        where = f"{op.table}({op.detail['cols']})"
        op.reason = Label(f"{where}：{int(dup_rows)} 行重复（{int(dup_values)} 个重复值），不能建立唯一约束",
                          f"{where}: {int(dup_rows)} rows share {int(dup_values)} duplicated values; cannot be unique")


def assess_foreign_key(conn, op: Operation, existing: set[str]) -> None:
    t, c = _col(op.payload["db_table"], op.payload["db_column"])
    query = sa.select(sa.func.count()).select_from(t).where(c.isnot(None))
    if op.payload["db_ref"] in existing:
        ref = sa.table(op.payload["db_ref"], sa.column("id"))
        query = query.where(~sa.exists().where(ref.c.id == c))
    n = _count(conn, query)
    if n:
        op.safety = BLOCKED
        op.reason = _label(op, f"{n} 行引用了不存在的记录", f"{n} rows refer to records that do not exist")


def assess(conn, op: Operation, existing: set[str]) -> Operation:
    """Set ``op.safety`` (and ``reason``, counts) from the rules above."""
    kind = op.kind
    if kind in ("rename_table", "rename_column"):
        op.safety = DESTRUCTIVE
        op.reason = _label(op, "重命名保留数据，但使用旧名称的地方会失效，需要确认",
                           "a rename keeps the data but breaks whatever uses the old name; needs confirmation")
    elif kind == "drop_table":
        t = sa.table(op.payload["db_table"])
        n = _count(conn, sa.select(sa.func.count()).select_from(t))
        op.detail["rows"] = n
        op.safety = DESTRUCTIVE
        op.reason = _label(op, f"删除 {n} 行数据（先备份）", f"deletes {n} rows (backed up first)")
    elif kind == "drop_column":
        t, c = _col(op.payload["db_table"], op.payload["db_column"])
        n = _count(conn, sa.select(sa.func.count()).select_from(t).where(c.isnot(None)))
        op.detail["rows"] = n
        op.safety = DESTRUCTIVE
        op.reason = _label(op, f"删除 {n} 个值（先备份）", f"deletes {n} values (backed up first)")
    elif kind == "alter_type":
        assess_type(conn, op)
    elif kind == "add_unique":
        assess_unique(conn, op)
    elif kind == "add_foreign_key":
        assess_foreign_key(conn, op, existing)
    elif kind == "alter_nullable" and not op.detail["nullable"]:
        t, c = _col(op.payload["db_table"], op.payload["db_column"])
        n = _count(conn, sa.select(sa.func.count()).select_from(t).where(c.is_(None)))
        if n:
            op.safety = BLOCKED
            op.reason = _label(op, f"{n} 行为空，不能设为非空", f"{n} rows are empty; cannot be made NOT NULL")
    elif kind == "add_system_column" and op.payload["column"].info.get("blocked_by") is not None:
        column = op.payload["column"]
        reasons = column.info["blocked_by"](conn, column.table)   # what its backfill would refuse
        if reasons:
            op.safety = BLOCKED
            op.reason = Label("；".join(r.zh for r in reasons), "; ".join(r.en for r in reasons))
    elif kind == "add_column" and not op.payload["column"].nullable:
        n = _count(conn, sa.select(sa.func.count()).select_from(sa.table(op.payload["db_table"])))
        if n:
            op.safety = BLOCKED
            op.reason = _label(op, f"表中已有 {n} 行，不能新增非空列（例如把已有实体改为明细实体）",
                               f"the table has {n} rows; a NOT NULL column cannot be added "
                               "(e.g. turning an entity with rows into a child entity)")
    elif kind == "create_table" and op.payload.get("foreign"):
        op.safety = BLOCKED
        op.reason = _label(op, "数据库中已有同名的表，但它不由 Danbao 管理",
                           "a table of this name exists in the database and is not managed by Danbao")
    elif kind == "unsupported":
        op.safety = BLOCKED
        op.reason = _label(op, "无法自动迁移，请人工处理", "cannot be migrated automatically; needs a person")
    return op
