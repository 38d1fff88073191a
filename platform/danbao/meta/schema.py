"""Check one parsed YAML file against the JSON Schemas shipped in the package.

The schemas (``danbao/schemas/*.json``, draft 2020-12) catch structure: wrong
types, unknown keys (typos), values outside a fixed set. Validators are built
once per process. Every violation becomes a PackError at the line of the key
or item it concerns, and the offending value is removed from the document
("pruned") so that later checks see only well-formed values and do not report
knock-on errors about it.
"""
from __future__ import annotations

import difflib
import functools
import json
import re
from decimal import Decimal
from importlib import resources

from jsonschema import Draft202012Validator

from danbao.meta.errors import PackError
from danbao.meta.yamlio import LineDict, LineList

PACK = "pack"
CONTENT = "content"
_LABEL_KEYS = ("label", "help", "description")


@functools.cache
def load_schema(kind: str) -> dict:
    """The JSON Schema for ``pack`` (pack.yaml) or ``content`` (other files)."""
    text = resources.files("danbao").joinpath("schemas", f"{kind}.json").read_text("utf-8")
    return json.loads(text)


@functools.cache
def _validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(inline_refs(load_schema(kind)))


@functools.cache
def _is_valid(kind: str):
    return compile_predicate(inline_refs(load_schema(kind)))


def inline_refs(schema: dict) -> dict:
    """The schema with every local ``$ref`` replaced by its target.

    The shipped files keep ``$defs`` for readability; validating against the
    inlined copy spares jsonschema a reference lookup per node, which is most
    of its time on a large pack. Siblings of a ``$ref`` (``required``) are
    kept beside the inlined keywords; the schemas have no recursion.
    """
    defs = schema.get("$defs", {})

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                target = walk(defs[ref[len("#/$defs/"):]])
                siblings = {k: walk(v) for k, v in node.items() if k != "$ref"}
                return {**target, **siblings}
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def check(doc, kind: str, file: str) -> tuple[object, list[PackError]]:
    """Validate ``doc``; return the pruned document (None if nothing usable is
    left) and the errors."""
    try:
        if _is_valid(kind)(doc):
            return doc, []
        return _check(doc, kind, file)
    except RecursionError:
        return None, [PackError(file, getattr(doc, "line", 1), "DB110", "the document is nested too deeply")]


def _check(doc, kind: str, file: str):
    errors: list[PackError] = []
    prune: list[tuple] = []
    seen_required: set = set()
    for err in _validator(kind).iter_errors(doc):
        path = tuple(err.absolute_path)
        if err.validator == "additionalProperties":
            errors.extend(_unknown_keys(doc, path, err, file, prune, kind))
        elif err.validator == "required":
            if path not in seen_required:
                seen_required.add(path)
                errors.extend(_missing_keys(doc, path, err, file))
        elif err.validator == "minProperties" and not path:
            errors.append(PackError(file, _line(doc, path), "DB110",
                                    "a content file needs one of the keys entity, extend, roles, menus, codelists"))
        else:
            errors.append(PackError(file, _line(doc, path), "DB110",
                                    f"{format_path(path)}: {_describe(err)}"))
            prune.append(path)
    if not errors:
        return doc, []
    if () in prune:
        return None, errors
    for path in sorted(prune, key=_path_key, reverse=True):
        _remove(doc, path)
    return doc, errors


# -- a fast yes/no answer ----------------------------------------------------
# Most files are valid; jsonschema then only has to confirm it, and that is
# most of the load time of a large pack. compile_predicate turns the (inlined)
# schema into nested closures that answer "certainly valid?" several times
# faster. It is conservative: when it says no, or meets anything it is unsure
# of, jsonschema runs and has the last word, so messages always come from it.

_TYPE_TESTS = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, Decimal)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_IGNORED = frozenset({"$schema", "$id", "title", "description", "$comment"})


def compile_predicate(node: dict):
    """A function ``value -> bool`` that is True only if ``node`` accepts value.

    Knows the keywords Danbao's schemas use; any other keyword is a
    programming error caught by the tests (KeyError at compile time).
    """
    tests = []
    for key, arg in node.items():
        if key in _IGNORED or key in ("then", "else"):
            continue
        tests.append(_KEYWORDS[key](arg, node))
    tests = tuple(tests)

    def valid(value) -> bool:
        for test in tests:
            if not test(value):
                return False
        return True
    return valid


def _k_type(arg, _):
    checks = tuple(_TYPE_TESTS[t] for t in ([arg] if isinstance(arg, str) else arg))
    return lambda v: any(c(v) for c in checks)


def _k_properties(arg, _):
    subs = {k: compile_predicate(s) for k, s in arg.items()}

    def test(v):
        if not isinstance(v, dict):
            return True
        for key, sub in subs.items():
            if key in v and not sub(v[key]):
                return False
        return True
    return test


def _k_additional(arg, node):
    if arg is not False:
        raise KeyError("additionalProperties other than false")
    known = frozenset(node.get("properties", ()))
    return lambda v: not isinstance(v, dict) or all(k in known for k in v)


def _k_required(arg, _):
    return lambda v: not isinstance(v, dict) or all(k in v for k in arg)


def _k_enum(arg, _):
    if not all(isinstance(a, str) for a in arg):
        raise KeyError("enum of non-text values")
    allowed = frozenset(arg)
    return lambda v: isinstance(v, str) and v in allowed


def _k_items(arg, _):
    sub = compile_predicate(arg)
    return lambda v: not isinstance(v, list) or all(sub(i) for i in v)


def _k_if(arg, node):
    cond = compile_predicate(arg)
    then = compile_predicate(node.get("then", {}))
    other = compile_predicate(node.get("else", {}))
    return lambda v: then(v) if cond(v) else other(v)


def _k_pattern(arg, _):
    regexp = re.compile(arg)
    return lambda v: not isinstance(v, str) or regexp.search(v) is not None


def _k_unique(arg, _):
    def test(v):
        if not arg or not isinstance(v, list):
            return True
        if not all(isinstance(i, str) for i in v):
            return False   # let jsonschema decide
        return len(set(v)) == len(v)
    return test


def _number_bound(compare):
    def make(arg, _):
        return lambda v: not _TYPE_TESTS["number"](v) or compare(v, arg)
    return make


_KEYWORDS = {
    "type": _k_type,
    "properties": _k_properties,
    "additionalProperties": _k_additional,
    "required": _k_required,
    "enum": _k_enum,
    "items": _k_items,
    "if": _k_if,
    "pattern": _k_pattern,
    "uniqueItems": _k_unique,
    "minLength": lambda a, _: lambda v: not isinstance(v, str) or len(v) >= a,
    "maxLength": lambda a, _: lambda v: not isinstance(v, str) or len(v) <= a,
    "minItems": lambda a, _: lambda v: not isinstance(v, list) or len(v) >= a,
    "minProperties": lambda a, _: lambda v: not isinstance(v, dict) or len(v) >= a,
    "minimum": _number_bound(lambda v, a: v >= a),
    "maximum": _number_bound(lambda v, a: v <= a),
}


def format_path(path) -> str:
    """``fields[3].type`` style; ``(document)`` for the root."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def _line(doc, path) -> int:
    """Line of the node at ``path``: its key's line, or its item's line."""
    node, line = doc, getattr(doc, "line", 1)
    for part in path:
        if isinstance(node, LineDict) and part in node:
            line, node = node.key_line(part), node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and part < len(node):
            line, node = node.item_line(part), node[part]
        else:
            break
    return line


def _node(doc, path):
    node = doc
    for part in path:
        node = node[part]
    return node


def _unknown_keys(doc, path, err, file, prune, kind):
    container = _node(doc, path)
    allowed = list(err.schema.get("properties", {}))
    if not path and kind == CONTENT and "entity" not in allowed:
        allowed = ["entity", "extend"] + allowed   # a typo of entity: lands in the lists schema
    for key in container:
        if key in allowed:
            continue
        message = f"{format_path(path + (key,))}: unknown key '{key}'"
        close = difflib.get_close_matches(str(key), allowed, n=1)
        if close:
            message += f" (did you mean '{close[0]}'?)"
        else:
            message += f" (allowed: {', '.join(allowed)})"
        line = container.key_line(key) if isinstance(container, LineDict) else _line(doc, path)
        yield PackError(file, line, "DB110", message)
        prune.append(path + (key,))


def _missing_keys(doc, path, err, file):
    container = _node(doc, path)
    line = _line(doc, path)
    where = format_path(path)
    for key in err.validator_value:
        if key in container:
            continue
        if key in ("zh", "en") and path and path[-1] in _LABEL_KEYS:
            lang = "Chinese" if key == "zh" else "English"
            yield PackError(file, line, "DB250", f"{where}: the {lang} text '{key}' is missing; "
                                                 "labels need both zh and en")
        elif key == "label":
            yield PackError(file, line, "DB250", f"{where}: 'label' is missing; labels need both zh and en")
        else:
            yield PackError(file, line, "DB110", f"{where}: the key '{key}' is required")


_JSON_TYPES = {"object": "a mapping", "array": "a list", "string": "text", "integer": "a whole number",
               "number": "a number", "boolean": "true or false", "null": "empty"}


def _describe(err) -> str:
    """A short message in YAML terms (mapping, list, text) rather than JSON's."""
    value = err.instance
    if err.validator == "type":
        wanted = err.validator_value
        wanted = [wanted] if isinstance(wanted, str) else wanted
        expected = " or ".join(_JSON_TYPES.get(w, w) for w in wanted)
        hint = ""
        if "string" in wanted and isinstance(value, (int, Decimal)) and not isinstance(value, bool):
            hint = " (put it in quotes)"
        return f"expected {expected}, got {_show(value)}{hint}"
    if err.validator == "enum":
        return f"{_show(value)} is not one of [{', '.join(map(str, err.validator_value))}]"
    if err.validator == "pattern":
        return f"{_show(value)} does not match {err.validator_value}"
    if err.validator == "minLength":
        return "must not be empty" if err.validator_value == 1 else \
            f"must be at least {err.validator_value} characters"
    if err.validator == "maxLength":
        return f"must be at most {err.validator_value} characters"
    if err.validator == "minimum":
        return f"{_show(value)} is less than the minimum {err.validator_value}"
    if err.validator == "maximum":
        return f"{_show(value)} is more than the maximum {err.validator_value}"
    if err.validator == "minItems":
        return "must not be empty"
    if err.validator == "uniqueItems":
        return "has repeated items"
    return err.message


def _show(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "an empty value"
    if isinstance(value, (dict, LineDict)):
        return "a mapping"
    if isinstance(value, (list, LineList)):
        return "a list"
    if isinstance(value, Decimal):
        return str(value)
    return repr(value)


def _path_key(path):
    return tuple((0, p) if isinstance(p, int) else (1, str(p)) for p in path)


def _remove(doc, path) -> None:
    try:
        parent = _node(doc, path[:-1])
    except (KeyError, IndexError, TypeError):
        return
    last = path[-1]
    if isinstance(parent, LineList):
        parent.remove_indexes([last])
    elif isinstance(parent, dict):
        parent.pop(last, None)
