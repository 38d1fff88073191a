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
    return Draft202012Validator(load_schema(kind))


def check(doc, kind: str, file: str) -> tuple[object, list[PackError]]:
    """Validate ``doc``; return the pruned document (None if nothing usable is
    left) and the errors."""
    errors: list[PackError] = []
    prune: list[tuple] = []
    seen_required: set = set()
    for err in _validator(kind).iter_errors(doc):
        path = tuple(err.absolute_path)
        if err.validator == "additionalProperties":
            errors.extend(_unknown_keys(doc, path, err, file, prune))
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


def _unknown_keys(doc, path, err, file, prune):
    container = _node(doc, path)
    allowed = list(err.schema.get("properties", {}))
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
