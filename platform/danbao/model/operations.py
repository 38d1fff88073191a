"""What a schema migration will do, said before it is done.

An ``Operation`` is one step (add a column, rename a table ...) with a safety
verdict; a ``MigrationPlan`` is the ordered list an admin is shown. They are
plain values: the planner makes them, the applier runs them, the web layer
prints them with ``describe(lang)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from danbao.meta.model import Label

SAFE = "safe"                # applies by itself (additive, or widening)
DESTRUCTIVE = "destructive"  # needs allow_destructive and makes a backup first
BLOCKED = "blocked"          # would lose data as things stand; never applied

#: The order operations run in: renames first so later steps use new names,
#: old indexes dropped before columns change, drops last.
ORDER = {
    "create_system_table": 0,
    "rename_table": 1,
    "rename_column": 2,
    "drop_foreign_key": 3, "drop_index": 3, "drop_unique": 3,
    "create_table": 4,
    "add_column": 5, "add_system_column": 5,
    "alter_type": 6, "alter_nullable": 6,
    "add_index": 7, "add_unique": 7, "add_system_index": 7,
    "add_foreign_key": 8,
    "drop_column": 9,
    "drop_table": 10,
    "unsupported": 11,
}

_TEXT = {
    "create_system_table": ("创建系统表 {table}", "create system table {table}"),
    "create_table": ("新建表 {table}（{columns} 列）", "create table {table} ({columns} columns)"),
    "add_column": ("新增列 {table}.{column} {type}", "add column {table}.{column} {type}"),
    "add_index": ("新建索引 {name}（{table}: {cols}）", "add index {name} on {table} ({cols})"),
    "add_unique": ("新建唯一索引 {name}（{table}: {cols}）", "add unique index {name} on {table} ({cols})"),
    "add_system_column": ("新增系统表列 {table}.{column} {type}", "add column {table}.{column} {type} to system table"),
    "add_system_index": ("新建系统表索引 {name}（{table}: {cols}）", "add index {name} on system table {table} ({cols})"),
    "drop_index": ("删除索引 {name}（{table}）", "drop index {name} on {table}"),
    "drop_unique": ("删除唯一约束 {name}（{table}）", "drop unique {name} on {table}"),
    "add_foreign_key": ("新增外键 {table}.{column} → {target}", "add foreign key {table}.{column} -> {target}"),
    "drop_foreign_key": ("删除外键 {table}.{column} → {target}", "drop foreign key {table}.{column} -> {target}"),
    "alter_type": ("修改列类型 {table}.{column}：{old_type} → {type}",
                   "change type of {table}.{column} from {old_type} to {type}"),
    "alter_nullable": ("修改列 {table}.{column} 为{null_zh}", "make {table}.{column} {null_en}"),
    "rename_table": ("重命名表 {old_name} → {table}", "rename table {old_name} to {table}"),
    "rename_column": ("重命名列 {table}.{old_name} → {column}", "rename column {table}.{old_name} to {column}"),
    "drop_column": ("删除列 {table}.{column}（{rows} 行有值）", "drop column {table}.{column} ({rows} rows have a value)"),
    "drop_table": ("删除表 {table}（{rows} 行）", "drop table {table} ({rows} rows)"),
    "unsupported": ("无法自动处理的变更（{table}）：{what}", "change that cannot be made automatically ({table}): {what}"),
}
_SAFETY = {SAFE: ("安全", "safe"), DESTRUCTIVE: ("破坏性", "destructive"), BLOCKED: ("已阻止", "blocked")}


@dataclass
class Operation:
    """One schema step.

    ``detail`` holds what ``describe`` prints (types, names, row counts);
    ``payload`` the SQLAlchemy objects and database-side names the applier
    and the data checks need. ``reason`` says why an op is destructive or
    blocked, naming table, column and how many rows.
    """
    kind: str
    table: str
    column: str | None = None
    safety: str = SAFE
    reason: Label | None = None
    detail: dict = field(default_factory=dict)
    payload: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        # reflected names arrive as SQLAlchemy's quoted_name; keep plain str
        self.table = str(self.table)
        self.column = None if self.column is None else str(self.column)

    def describe(self, lang: str | None = "zh") -> str:
        zh, en = _TEXT[self.kind]
        values = {"table": self.table, "column": self.column, "rows": "?", "columns": "?",
                  "null_zh": "可空" if self.detail.get("nullable") else "非空",
                  "null_en": "nullable" if self.detail.get("nullable") else "not null"}
        values.update(self.detail)
        if "cols" in values and not isinstance(values["cols"], str):
            values["cols"] = ", ".join(values["cols"])
        return (en if (lang or "zh").startswith("en") else zh).format(**values)

    @property
    def signature(self) -> tuple:
        """What the op does, without row counts: two plans with equal
        signatures make the same change."""
        stable = {k: v for k, v in self.detail.items() if k not in ("rows", "offending")}
        return (self.kind, self.table, self.column, self.safety, tuple(sorted(stable.items(), key=str)))

    def line(self, lang: str | None = "zh") -> str:
        """``[safety] description — reason`` for listings."""
        zh, en = _SAFETY[self.safety]
        is_en = (lang or "zh").startswith("en")
        text = f"[{en if is_en else zh}] {self.describe(lang)}"
        if self.reason is not None:
            text += f" — {self.reason.get(lang)}"
        return text


@dataclass
class MigrationPlan:
    """The ordered operations that bring the database to ``models``."""
    models: Any
    operations: list[Operation]
    dialect: str

    def __iter__(self) -> Iterator[Operation]:
        return iter(self.operations)

    def __len__(self) -> int:
        return len(self.operations)

    @property
    def is_empty(self) -> bool:
        return not self.operations

    def _with(self, safety: str) -> list[Operation]:
        return [op for op in self.operations if op.safety == safety]

    @property
    def safe(self) -> list[Operation]:
        return self._with(SAFE)

    @property
    def destructive(self) -> list[Operation]:
        return self._with(DESTRUCTIVE)

    @property
    def blocked(self) -> list[Operation]:
        return self._with(BLOCKED)

    @property
    def signature(self) -> tuple:
        return tuple(op.signature for op in self.operations)

    def describe(self, lang: str | None = "zh") -> list[str]:
        return [op.line(lang) for op in self.operations]

    def refusals(self, allow_destructive: bool) -> list[Label]:
        """Why applying this plan must not start (empty: it may)."""
        out = [_refusal(op) for op in self.blocked]
        if not allow_destructive:
            out += [Label(f"需要确认破坏性变更：{op.describe('zh')}",
                          f"destructive, needs allow_destructive: {op.describe('en')}")
                    for op in self.destructive]
        return out


def _refusal(op: Operation) -> Label:
    reason = op.reason or Label("数据不允许", "existing data does not allow it")
    return Label(f"已阻止：{op.describe('zh')} — {reason.zh}", f"blocked: {op.describe('en')} — {reason.en}")


class MigrationRefused(Exception):
    """Applying was refused before anything changed; ``reasons`` say why."""

    def __init__(self, reasons: list[Label]):
        self.labels = list(reasons)
        self.reasons = [r.en for r in self.labels]
        super().__init__("; ".join(self.reasons))

    def messages(self, lang: str | None = "zh") -> list[str]:
        return [r.get(lang) for r in self.labels]


@dataclass
class Backup:
    """Where the pre-change copy went: files and/or backup tables."""
    files: list[Path] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = [str(p) for p in self.files] + [f"table {t}" for t in self.tables]
        return ", ".join(parts)


@dataclass
class ApplyResult:
    applied: list[Operation]
    backup: Backup | None = None
    state_id: int | None = None

    def describe(self, lang: str | None = "zh") -> list[str]:
        return [op.describe(lang) for op in self.applied]

