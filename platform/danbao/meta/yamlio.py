"""Read pack YAML into dicts and lists that remember their line numbers.

Errors must point at the offending key or item, so the loader builds
``LineDict``/``LineList`` instead of plain containers. The YAML dialect is
deliberately small and unsurprising:

* numbers with a fraction or exponent become ``decimal.Decimal`` (never float);
* only ``true``/``false`` are booleans (``yes``, ``no``, ``on``, ``off``, ``Y``
  and ``N`` stay text, unlike YAML 1.1), and dates stay text;
* a duplicate key is an error (DB102), as are aliases and non-text keys (DB103);
* bad bytes, bad syntax and empty files become PackErrors, never exceptions.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import yaml

from danbao.meta.errors import PackError

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LineDict(dict):
    """A YAML mapping: ``line`` is where it starts, ``key_line(k)`` where key k is."""
    __slots__ = ("line", "_key_lines")

    def __init__(self, *args, line: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.line = line
        self._key_lines: dict = {}

    def key_line(self, key) -> int:
        return self._key_lines.get(key, self.line)


class LineList(list):
    """A YAML sequence: ``line`` is where it starts, ``item_line(i)`` where item i is."""
    __slots__ = ("line", "_item_lines")

    def __init__(self, *args, line: int = 1):
        super().__init__(*args)
        self.line = line
        self._item_lines: list[int] = []

    def item_line(self, index: int) -> int:
        try:
            return self._item_lines[index]
        except (IndexError, TypeError):
            return self.line

    def remove_indexes(self, indexes) -> None:
        """Drop items (and their lines) by position, keeping the two aligned."""
        for i in sorted(set(indexes), reverse=True):
            if 0 <= i < len(self):
                del self[i]
                if i < len(self._item_lines):
                    del self._item_lines[i]


class _Problem(Exception):
    """Raised inside the loader for input it refuses; carries a line and code."""

    def __init__(self, line: int, code: str, message: str):
        super().__init__(message)
        self.line, self.code, self.message = line, code, message


def _line(node) -> int:
    return node.start_mark.line + 1


_STR, _INT, _FLOAT = "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_BOOL, _NULL = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"

# YAML 1.2 core-schema style resolution of plain scalars: fewer surprises than
# YAML 1.1 (no yes/no booleans, no sexagesimal numbers, no implicit dates).
_IMPLICIT = (
    (_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")),
    (_INT, re.compile(r"^(?:[-+]?[0-9][0-9_]*|0x[0-9a-fA-F_]+|0o[0-7_]+)$")),
    (_FLOAT, re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)?\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
                        r"|[-+]?[0-9][0-9_]*\.(?:[eE][-+]?[0-9]+)?"
                        r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+)$")),
    (_NULL, re.compile(r"^(?:~|null|Null|NULL)$")),
)
_BY_FIRST_CHAR: dict[str, tuple] = {}
for _tag, _regexp in _IMPLICIT:
    for _char in {_BOOL: "tTfF", _INT: "-+0123456789",
                  _FLOAT: "-+0123456789.", _NULL: "~nN"}[_tag]:
        _BY_FIRST_CHAR[_char] = _BY_FIRST_CHAR.get(_char, ()) + ((_tag, _regexp),)


class _Composer(_Base):
    """Parses YAML into a node tree (in C when libyaml is there); our own
    resolver decides which plain scalars are numbers, booleans or null."""

    def resolve(self, kind, value, implicit):
        if kind is yaml.ScalarNode:
            if implicit[0]:
                if value == "":
                    return _NULL
                for tag, regexp in _BY_FIRST_CHAR.get(value[0], ()):
                    if regexp.match(value):
                        return tag
            return _STR
        return _SEQ if kind is yaml.SequenceNode else _MAP


class _Builder:
    """Turns a node tree into LineDict/LineList and scalars. Written directly
    rather than through PyYAML's constructor: it is several times faster, and
    it is the one place that refuses aliases, odd tags and non-text keys."""

    def __init__(self):
        self.seen: set[int] = set()
        self.problems: list[_Problem] = []

    def build(self, node):
        if id(node) in self.seen:
            raise _Problem(_line(node), "DB103",
                           "anchors and aliases (&name, *name) are not allowed: write the value out")
        self.seen.add(id(node))
        tag = node.tag
        if tag == _MAP and isinstance(node, yaml.MappingNode):
            return self.mapping(node)
        if tag == _SEQ and isinstance(node, yaml.SequenceNode):
            return self.sequence(node)
        if isinstance(node, yaml.ScalarNode):
            if tag == _STR:
                return node.value
            if tag == _INT:
                return _to_int(node)
            if tag == _FLOAT:
                return _to_decimal(node)
            if tag == _BOOL and node.value.lower() in ("true", "false"):
                return node.value.lower() == "true"
            if tag == _NULL and node.value in ("", "~", "null", "Null", "NULL"):
                return None
        raise _Problem(_line(node), "DB101", f"unsupported YAML tag {tag}")

    def mapping(self, node):
        data = LineDict(line=_line(node))
        lines = data._key_lines
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Problem(key_line, "DB103", "a key must be plain text, not a list or mapping")
            key = self.build(key_node)
            if not isinstance(key, str):
                raise _Problem(key_line, "DB103", f"key {key!r} must be text: quote it")
            if key in data:
                self.problems.append(_Problem(
                    key_line, "DB102", f"duplicate key '{key}' (first at line {lines[key]})"))
            if id(value_node) in self.seen:  # an alias: report it at its key
                raise _Problem(key_line, "DB103",
                               "anchors and aliases (&name, *name) are not allowed: write the value out")
            data[key] = self.build(value_node)
            lines[key] = key_line
        return data

    def sequence(self, node):
        data = LineList(line=_line(node))
        lines = data._item_lines
        for item in node.value:
            data.append(self.build(item))
            lines.append(item.start_mark.line + 1)
        return data


def _to_decimal(node) -> Decimal:
    text = node.value.replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _Problem(_line(node), "DB101", f"{text!r} is not a number") from None
    if not value.is_finite():
        raise _Problem(_line(node), "DB101", f"{text!r} is not a finite number")
    return value


def _to_int(node) -> int:
    text = node.value.replace("_", "")
    digits = text.lstrip("+-")
    try:
        if digits[:2].lower() in ("0x", "0o"):
            sign = -1 if text.startswith("-") else 1
            return sign * int(digits[2:], 16 if digits[1] in "xX" else 8)
        return int(text)
    except ValueError:
        raise _Problem(_line(node), "DB101", f"{text!r} is not a whole number") from None


# Characters YAML forbids; found up front so the error has an exact line.
_BAD_CHARS = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")


def decode(data: bytes, file: str) -> tuple[str | None, list[PackError]]:
    """UTF-8 text of a pack file (a BOM is allowed), or an error with the line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        return None, [PackError(file, line, "DB100",
                                f"not UTF-8 text (byte 0x{data[exc.start]:02x}): save the file as UTF-8")]
    bad = _BAD_CHARS.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        return None, [PackError(file, line, "DB101",
                                f"character U+{ord(bad.group()):04X} is not allowed in YAML")]
    return text, []


def parse(data: bytes | str, file: str):
    """Parse one YAML document. Returns ``(value, errors)``; value is None when
    the file could not be parsed (or is empty), with the reason in errors."""
    if isinstance(data, bytes):
        text, errors = decode(data, file)
        if text is None:
            return None, errors
    else:
        text = data
    composer = _Composer(text)
    builder = _Builder()
    try:
        node = composer.get_single_node()
        if node is None:
            return None, [PackError(file, 1, "DB104", "the file is empty")]
        value = builder.build(node)
    except _Problem as exc:
        earlier = [PackError(file, p.line, p.code, p.message) for p in builder.problems]
        return None, earlier + [PackError(file, exc.line, exc.code, exc.message)]
    except yaml.MarkedYAMLError as exc:
        return None, [PackError(file, _mark_line(exc), "DB101", _yaml_message(exc))]
    except yaml.YAMLError as exc:  # reader errors and the like carry no mark
        position = getattr(exc, "position", None)
        line = text.count("\n", 0, position) + 1 if isinstance(position, int) else 1
        return None, [PackError(file, line, "DB101", f"YAML error: {exc}")]
    except RecursionError:
        return None, [PackError(file, 1, "DB101", "the document is nested too deeply")]
    finally:
        composer.dispose()
    problems = [PackError(file, p.line, p.code, p.message) for p in builder.problems]
    return value, problems


def _mark_line(exc: yaml.MarkedYAMLError) -> int:
    mark = exc.problem_mark or exc.context_mark
    return mark.line + 1 if mark is not None else 1


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (exc.context, exc.problem) if p]
    message = ": ".join(parts) if parts else "syntax error"
    if exc.context_mark is not None and exc.problem_mark is not None \
            and exc.context_mark.line != exc.problem_mark.line:
        message += f" (started at line {exc.context_mark.line + 1})"
    return f"invalid YAML: {message}"
