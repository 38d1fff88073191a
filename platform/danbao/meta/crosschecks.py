"""Checks that need the whole merged picture: names, references, layout.

They run after every pack has been laid over the earlier ones, so an overlay
may fix or break what an earlier pack declared. Each problem gets a stable
code (see ``metadata/README.md``) and the file and line of the key or item
that is wrong, which for a merged field may be in a later pack.

Keys a field's type does not take are reported once (DB231) and then ignored,
and values the schema already refused were pruned, so one mistake gives one
error rather than a cascade.
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from danbao.checks import NAMED_CHECKS
from danbao.checks.normalize import CHECK_RULES, NORMALIZERS, apply as normalized
from danbao.meta import defaults, names
from danbao.meta.errors import PackError
from danbao.meta.model import COLUMN_TYPES, FIELD_TYPES, MONEY_SCALE, RATE_SCALE, SYSTEM_COLUMNS, Source
from danbao.meta.overlay import EntityDraft, Layered, Merged
from danbao.meta.yamlio import LineList

#: The role Flask-AppBuilder creates; it may do everything and is never declared.
BUILTIN_ROLES = frozenset({"Admin"})

_CONDITIONS = {"visible_if", "required_if", "readonly_if"}
_COMMON = {"name", "type", "label", "help", "required", "readonly", "renamed_from"} | _CONDITIONS
_COLUMN = _COMMON | {"unique", "index", "default", "computed"}
_LENGTHS = {"min_length", "max_length", "pattern"}
_BOUNDS = {"min", "max"}
#: The keys each field type takes; any other key is DB231.
ALLOWED_KEYS = {
    "string": _COLUMN | _LENGTHS | {"check", "check_by", "normalize", "numbering", "sensitive"},
    "text": _COLUMN | _LENGTHS | {"sensitive"},
    "integer": _COLUMN | _BOUNDS,
    "decimal": _COLUMN | _BOUNDS | {"precision", "scale"},
    "money": _COLUMN | _BOUNDS | {"precision"},
    "rate": _COLUMN | _BOUNDS | {"precision"},
    "boolean": _COLUMN,
    "date": _COLUMN,
    "datetime": _COLUMN,
    "enum": _COLUMN | {"options"},
    "code": _COLUMN | {"codelist"},
    "reference": _COMMON | {"unique", "index", "target"},
    "user": _COMMON | {"index", "role"},
    "children": {"name", "type", "label", "help", "readonly", "renamed_from", "target", "visible_if"},
    "attachments": _COMMON | {"accept", "max_size_mb", "max_files"},
}
#: The key each type cannot do without (DB230).
NEEDED_KEY = {"enum": "options", "code": "codelist", "reference": "target", "children": "target"}

#: Keys whose change can make a valid default invalid.
_DEFAULT_DEPENDS = ("type", "options", "codelist", "min", "max", "min_length", "max_length",
                    "pattern", "check", "normalize", "precision", "scale")

#: Codes whose errors say "unknown name X": when some file could not be read,
#: X may well be declared there, so these are held back as likely noise.
RESOLUTION_CODES = frozenset({"DB214", "DB220", "DB222", "DB224", "DB225", "DB226", "DB229", "DB260", "DB268",
                              "DB270", "DB275", "DB278"})


def _types_taking(key: str) -> str:
    return ", ".join(t for t in ALLOWED_KEYS if key in ALLOWED_KEYS[t])


class CrossChecker:
    """Runs every cross-check over merged drafts and collects the errors."""

    def __init__(self, merged: Merged):
        self.m = merged
        self.errors: list[PackError] = []
        self.codes = {name: _codes(layer) for name, layer in merged.codelists.items()}
        self.child_owner: dict[str, str] = {}   # child entity -> "entity.field" editing it

    def error(self, src: Source, code: str, message: str) -> None:
        self.errors.append(PackError(src.file, src.line, code, message))

    def run(self) -> list[PackError]:
        for name, layer in self.m.roles.items():
            self._identifier(name, layer.src("name"), "role")
        for name, layer in self.m.menus.items():
            self._identifier(name, layer.src("key"), "menu")
        for name, layer in self.m.codelists.items():
            self._codelist(name, layer)
        for entity in self.m.entities.values():
            self._entity(entity)
        for code, layer in self.m.warnings.items():
            self._warning(code, layer)
        return self.errors

    def _warning(self, code: str, w: Layered) -> None:
        self._identifier(code, w.src("code"), "warning rule")
        entity = w.get("entity")
        if isinstance(entity, str) and entity not in self.m.entities:
            self.error(w.src("entity"), "DB220", f"warning rule '{code}': entity '{entity}' is not declared")
        for role in (w.get("notify") or {}).get("roles", []) or []:
            if role not in self.m.roles and role not in BUILTIN_ROLES:
                self.error(w.src("notify"), "DB225", f"warning rule '{code}': role '{role}' is not declared")
        entity_draft = self.m.entities.get(entity) if isinstance(entity, str) else None
        for name in (w.get("notify") or {}).get("fields", []) or []:
            if entity_draft is None:
                break
            f = entity_draft.fields.get(name)
            if f is None or f.get("type") != "user":
                self.error(w.src("notify"), "DB229", f"warning rule '{code}': notify field '{name}' "
                           f"is not a user field of '{entity}'")

    # -- names ----------------------------------------------------------------
    def _identifier(self, name, src: Source, what: str) -> bool:
        reason = names.unsafe_reason(name)
        if reason:
            self.error(src, "DB210", f"{what} '{name}' {reason}")
            return False
        return True

    def _table_name(self, name, src: Source, what: str) -> None:
        if self._identifier(name, src, what):
            reason = names.reserved_reason(name)
            if reason:
                self.error(src, "DB211", f"{what} '{name}' {reason}")

    # -- code lists -----------------------------------------------------------
    def _codelist(self, name: str, layer: Layered) -> None:
        self._identifier(name, layer.src("name"), "code list")
        seen: set[str] = set()
        items = [(item, src) for item, src in layer.items("items") if hasattr(item, "get")]
        for item, src in items:
            code = item.get("code")
            if not isinstance(code, str):
                continue   # refused by the schema already
            if code in seen:
                self.error(src, "DB212", f"code '{code}' appears twice in code list '{name}'")
            seen.add(code)
        for item, src in items:
            parent = item.get("parent")
            if parent is not None and parent not in seen:
                self.error(src, "DB227", f"parent '{parent}' of code '{item.get('code')}' "
                                         f"is not a code of list '{name}'")

    # -- entities -------------------------------------------------------------
    def _entity(self, e: EntityDraft) -> None:
        self._table_name(e.name, e.head.at, "entity")
        if "renamed_from" in e.head:
            self._identifier(e.head.get("renamed_from"), e.head.src("renamed_from"), "renamed_from")
        self._parent(e)
        menu = e.head.get("menu")
        if menu is not None and menu not in self.m.menus:
            self.error(e.head.src("menu"), "DB226", f"menu '{menu}' is not declared (menus: "
                                                   f"{', '.join(self.m.menus) or 'none'})")
        if not e.fields:
            self.error(e.head.at, "DB236", f"entity '{e.name}' declares no fields")
            return
        for name, f in e.fields.items():
            self._field(e, name, f)
        self._reference_columns(e)
        self._title(e)
        self._sections(e)
        self._list(e)
        self._indexes(e)
        self._permissions(e)

    def _parent(self, e: EntityDraft) -> None:
        parent = e.head.get("parent")
        if parent is None:
            return
        src = e.head.src("parent")
        if parent not in self.m.entities:
            self.error(src, "DB222", f"parent '{parent}' is not a declared entity")
            return
        chain, current = [e.name], parent
        while current is not None and current in self.m.entities:
            chain.append(current)
            if current == e.name:
                self.error(src, "DB223", f"the parent chain loops: {' -> '.join(chain)}")
                return
            if current in chain[:-1]:
                return   # a loop further up; reported at the entities in it
            current = self.m.entities[current].head.get("parent")

    # -- fields ---------------------------------------------------------------
    def _field(self, e: EntityDraft, name: str, f: Layered) -> None:
        self._table_name(name, f.src("name"), "field")
        if "renamed_from" in f:
            self._identifier(f.get("renamed_from"), f.src("renamed_from"), "renamed_from")
        ftype = f.get("type")
        if ftype not in FIELD_TYPES:
            return  # missing or refused by the schema: already reported
        allowed = ALLOWED_KEYS[ftype]
        for key in f.values:
            if key not in allowed:
                self.error(f.newest(key, "type"), "DB231", f"field '{name}': {ftype} fields take no '{key}' "
                                                f"(it applies to: {_types_taking(key)})")
        needed = NEEDED_KEY.get(ftype)
        if needed and not f.get(needed):
            self.error(f.newest("type", needed), "DB230", f"field '{name}': {_a(ftype)} field needs '{needed}'")
        if ftype == "enum":
            self._options(name, f)
        if ftype == "code" and f.get("codelist") and f.get("codelist") not in self.m.codelists:
            self.error(f.src("codelist"), "DB224", f"field '{name}': code list '{f.get('codelist')}' "
                                                   "is not declared")
        if ftype in ("reference", "children") and f.get("target"):
            self._target(e, name, f, ftype)
        self._bounds(name, f, ftype)
        if "pattern" in allowed and "pattern" in f:
            try:
                re.compile(f.get("pattern"))
            except (re.error, RecursionError, OverflowError) as exc:
                self.error(f.src("pattern"), "DB233", f"field '{name}': pattern is not a valid "
                                                      f"regular expression: {exc}")
        if "check" in allowed and "check" in f and f.get("check") not in NAMED_CHECKS:
            self.error(f.src("check"), "DB234", f"field '{name}': unknown check '{f.get('check')}' "
                                                f"(known: {', '.join(sorted(NAMED_CHECKS))})")
        if "normalize" in allowed and "normalize" in f:
            self._normalize(e, name, f)
        if "check_by" in allowed and "check_by" in f:
            self._check_by(e, name, f)
        if "default" in allowed and f.get("default") is not None:
            self._default(name, f, ftype)

    def _normalize(self, e: EntityDraft, name: str, f: Layered) -> None:
        seen: set[str] = set()
        for rule, src in f.items("normalize"):
            if rule not in NORMALIZERS:
                self.error(src, "DB237", f"field '{name}': unknown normalisation '{rule}' "
                                         f"(known: {', '.join(NORMALIZERS)})")
            elif rule in seen:
                self.error(src, "DB237", f"field '{name}': normalisation '{rule}' is listed twice")
            elif rule in CHECK_RULES and CHECK_RULES[rule] not in _checks_of(f):
                self.error(src, "DB237", f"field '{name}': '{rule}' applies only to a field checked "
                                         f"as '{CHECK_RULES[rule]}'")
            seen.add(rule)

    def _check_by(self, e: EntityDraft, name: str, f: Layered) -> None:
        spec, src = f.get("check_by"), f.src("check_by")
        if not hasattr(spec, "get"):
            return   # refused by the schema
        if "check" in f:
            self.error(f.newest("check", "check_by"), "DB238", f"field '{name}': declare either 'check' or "
                                                               "'check_by', not both")
        by = spec.get("field")
        other = e.fields.get(by)
        if other is None or other.get("type") not in ("code", "enum") or by == name:
            self.error(src, "DB238", f"field '{name}': check_by field '{by}' is not a code or enum field "
                                     f"of '{e.name}'")
            return
        choices = (self.codes.get(other.get("codelist")) if other.get("type") == "code"
                   else {o.get("value") for o, _ in other.items("options") if hasattr(o, "get")})
        checks = spec.get("checks")
        if not hasattr(checks, "items"):
            return
        for key, check in checks.items():
            where = Source(src.file, checks.key_line(key)) if hasattr(checks, "key_line") else src
            if choices is not None and key not in choices:
                self.error(where, "DB238", f"field '{name}': check_by key '{key}' is not a value of "
                                           f"field '{by}'")
            if check not in NAMED_CHECKS:
                self.error(where, "DB234", f"field '{name}': unknown check '{check}' "
                                           f"(known: {', '.join(sorted(NAMED_CHECKS))})")

    def _options(self, name: str, f: Layered) -> None:
        seen: set[str] = set()
        for item, src in f.items("options"):
            value = item.get("value") if hasattr(item, "get") else None
            if not isinstance(value, str):
                continue   # refused by the schema already
            if value in seen:
                self.error(src, "DB212", f"field '{name}': option '{value}' appears twice")
            seen.add(value)

    def _target(self, e: EntityDraft, name: str, f: Layered, ftype: str) -> None:
        target = f.get("target")
        src = f.src("target")
        if target not in self.m.entities:
            self.error(src, "DB220", f"field '{name}': target '{target}' is not a declared entity")
            return
        if ftype == "children":
            owner = self.child_owner.setdefault(target, f"{e.name}.{name}")
            if owner != f"{e.name}.{name}":
                self.error(src, "DB228", f"field '{name}': child entity '{target}' is already edited "
                                         f"through children field '{owner}'")
            parent = self.m.entities[target].head.get("parent")
            if parent != e.name:
                self.error(src, "DB221", f"field '{name}': child entity '{target}' must declare "
                                         f"parent: {e.name} (it declares "
                                         f"{'parent: ' + parent if parent else 'no parent'})")

    def _bounds(self, name: str, f: Layered, ftype: str) -> None:
        allowed = ALLOWED_KEYS[ftype]
        if "min" in allowed:
            for key in ("min", "max"):
                if key in f:
                    reason = defaults.number_fits(ftype, f.get(key), f.get("precision"), f.get("scale"))
                    if reason:
                        self.error(f.newest(key, "type", "precision", "scale"), "DB235",
                                   f"field '{name}': {key} {f.get(key)} {reason}")
            low, high = f.get("min"), f.get("max")
            if isinstance(low, (int, Decimal)) and isinstance(high, (int, Decimal)) and low > high:
                self.error(f.newest("min", "max"), "DB232", f"field '{name}': min {low} is more than max {high}")
        if "min_length" in allowed:
            low, high = f.get("min_length"), f.get("max_length")
            if isinstance(low, int) and isinstance(high, int) and low > high:
                self.error(f.newest("min_length", "max_length"), "DB232",
                           f"field '{name}': min_length {low} is more than max_length {high}")
        precision, scale = f.get("precision"), f.get("scale")
        if "scale" in allowed and isinstance(precision, int) and isinstance(scale, int) and scale > precision:
            self.error(f.newest("scale", "precision"), "DB232", f"field '{name}': scale {scale} is more than "
                                                f"precision {precision}")
        fixed = {"money": MONEY_SCALE, "rate": RATE_SCALE}.get(ftype)
        if fixed is not None and isinstance(precision, int) and precision <= fixed:
            self.error(f.newest("precision", "type"), "DB232", f"field '{name}': {_a(ftype)} field keeps {fixed} "
                                                    f"decimal places, so precision must exceed {fixed}")

    def _default(self, name: str, f: Layered, ftype: str) -> None:
        src = f.newest("default", *_DEFAULT_DEPENDS)
        try:
            defaults.typed_default(ftype, f.get("default"), f, self.codes.get(f.get("codelist")))
        except ValueError as exc:
            self.error(src, "DB235", f"field '{name}': default {_show(f.get('default'))} {exc}")
            return
        value = f.get("default")
        if ftype == "string" and f.get("check") in NAMED_CHECKS:
            rules = f.get("normalize") if isinstance(f.get("normalize"), list) else ()
            if NAMED_CHECKS[f.get("check")].failure(normalized(rules, value), _LOAD_DAY):
                self.error(src, "DB235", f"field '{name}': default {_show(value)} fails "
                                                      f"check '{f.get('check')}'")
        if ftype in defaults.TEXT_TYPES and isinstance(f.get("pattern"), str):
            try:
                matches = re.fullmatch(f.get("pattern"), value)
            except (re.error, RecursionError, OverflowError):
                return  # the bad pattern is its own error
            if not matches:
                self.error(src, "DB235", f"field '{name}': default {_show(value)} does not "
                                                      "match the pattern")

    def _reference_columns(self, e: EntityDraft) -> None:
        for name, f in e.fields.items():
            if f.get("type") != "reference":
                continue
            column = f"{name}_id"
            if column in e.fields:
                self.error(f.src("name"), "DB215", f"reference '{name}' is stored in column '{column}', "
                                                   f"which is also a field of '{e.name}'")
            elif column in SYSTEM_COLUMNS:
                self.error(f.src("name"), "DB215", f"reference '{name}' is stored in column '{column}', "
                                                   "a system column")

    # -- layout ---------------------------------------------------------------
    def _column(self, e: EntityDraft, name, src: Source, code: str, where: str, *,
                types=COLUMN_TYPES, kind="a column field") -> None:
        """Report ``name`` unless it is a field of ``e`` of one of ``types``."""
        f = e.fields.get(name)
        if f is None:
            self.error(src, code, f"{where}: '{name}' is not a field of '{e.name}'")
        elif f.get("type") in FIELD_TYPES and f.get("type") not in types:
            self.error(src, code, f"{where}: '{name}' is {_a(f.get('type'))} field; "
                                  f"{where} needs {kind}")

    def _title(self, e: EntityDraft) -> None:
        if "title" in e.head:
            self._column(e, e.head.get("title"), e.head.src("title"), "DB240", "title")
        elif defaults.default_title(e.fields) is None:
            self.error(e.head.at, "DB240", f"entity '{e.name}' has no column field to serve as title")

    def _sections(self, e: EntityDraft) -> None:
        if not e.sections_declared:
            return
        placed: dict[str, str] = {}
        for key, section in e.sections.items():
            self._identifier(key, section.head.src("key"), "section")
            for name, src in section.fields:
                if name not in e.fields:
                    self.error(src, "DB241", f"section '{key}': '{name}' is not a field of '{e.name}'")
                elif name in placed:
                    self.error(src, "DB245", f"section '{key}': field '{name}' is already placed "
                                             f"in section '{placed[name]}'")
                else:
                    placed[name] = key
        for name, f in e.fields.items():
            if name not in placed:
                self.error(f.at, "DB244", f"field '{name}' appears in no section of '{e.name}'")

    def _list(self, e: EntityDraft) -> None:
        lst = e.list
        if lst is None:
            return
        for part in ("columns", "filters"):
            for name, src in lst.items(part):
                self._column(e, name, src, "DB242", f"list {part}")
        for name, src in lst.items("search"):
            self._column(e, name, src, "DB242", "list search", types=defaults.TEXT_TYPES,
                         kind="a string or text field")
        order_by = lst.get("order_by")
        if isinstance(order_by, str):
            name = order_by[1:] if order_by.startswith("-") else order_by
            if name != "id":
                self._column(e, name, lst.src("order_by"), "DB242", "list order_by")

    def _indexes(self, e: EntityDraft) -> None:
        for node, file in e.indexes:
            fields = node.get("fields")
            if isinstance(fields, LineList):
                for i, name in enumerate(fields):
                    self._column(e, name, Source(file, fields.item_line(i)), "DB243", "index")

    def _permissions(self, e: EntityDraft) -> None:
        if e.permissions is None:
            return
        for action in ("read", "write", "delete"):
            for role, src in e.permissions.items(action):
                if role not in self.m.roles and role not in BUILTIN_ROLES:
                    self.error(src, "DB225", f"permissions.{action}: role '{role}' is not declared")


def _a(word) -> str:
    return f"{'an' if str(word)[:1] in 'aeiou' else 'a'} {word}"


def _show(value) -> str:
    return str(value) if isinstance(value, (int, Decimal)) and not isinstance(value, bool) else repr(value)


#: Defaults are checked against a fixed day, so a pack's validity does not change with the calendar.
_LOAD_DAY = dt.date(2100, 1, 1)


def _checks_of(f: Layered) -> set[str]:
    """The named checks a field's value can get: its ``check`` or any of its ``check_by``."""
    spec = f.get("check_by")
    chosen = set(spec.get("checks").values()) if hasattr(spec, "get") and hasattr(spec.get("checks"), "values") \
        else set()
    return chosen | ({f.get("check")} if "check" in f else set())


def _codes(layer: Layered) -> set[str]:
    return {item.get("code") for item, _ in layer.items("items") if hasattr(item, "get")}


def cross_check(merged: Merged) -> list[PackError]:
    """Every cross-check over the merged drafts."""
    return CrossChecker(merged).run()
