"""The value types of the expression language and how plain Python values map to them.

Checker types: ``number`` (integer/decimal/money/rate/reference ids),
``text`` (string/text/enum/code), ``boolean``, ``date``, ``datetime``,
``null`` (the literal ``None``) and ``any`` (a plugin value of unknown type).
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from danbao.meta.model import MONEY_SCALE, RATE_SCALE, FieldMeta

NUMBER = "number"
TEXT = "text"
BOOLEAN = "boolean"
DATE = "date"
DATETIME = "datetime"
NULL = "null"
ANY = "any"

#: Types a name, a function argument or a result may be declared with.
VALUE_TYPES = frozenset({NUMBER, TEXT, BOOLEAN, DATE, DATETIME, ANY})
#: Types ``expect=`` accepts.
EXPECTABLE = frozenset({NUMBER, TEXT, BOOLEAN, DATE, DATETIME})

#: Metadata field type -> checker type.
FIELD_TYPE_MAP = {
    "string": TEXT, "text": TEXT, "enum": TEXT, "code": TEXT,
    "integer": NUMBER, "decimal": NUMBER, "money": NUMBER, "rate": NUMBER,
    "reference": NUMBER, "user": NUMBER,
    "boolean": BOOLEAN, "date": DATE, "datetime": DATETIME,
}

#: Words used in messages (staff read them in the metadata admin screen).
_WORDS = {NUMBER: "number", TEXT: "text", BOOLEAN: "yes/no", DATE: "date",
          DATETIME: "datetime", NULL: "None", ANY: "value"}

#: Decimal places of ``decimal`` fields that declare no scale (as the model builder).
DEFAULT_DECIMAL_SCALE = 4


def word(kind: str) -> str:
    """How a type is named in error messages."""
    return _WORDS.get(kind, kind)


def field_kind(f: FieldMeta) -> str:
    try:
        return FIELD_TYPE_MAP[f.type]
    except KeyError:
        raise ValueError(f"field {f.name!r} of type {f.type!r} is not a value") from None


def field_scale(f: FieldMeta) -> int | None:
    """Decimal places of a numeric field's values (None for non-numbers)."""
    if f.type in ("integer", "reference", "user"):
        return 0
    if f.type == "money":
        return MONEY_SCALE
    if f.type == "rate":
        return RATE_SCALE
    if f.type == "decimal":
        return DEFAULT_DECIMAL_SCALE if f.scale is None else f.scale
    return None


def is_plain(value) -> bool:
    """Plain values are the only things an expression ever sees."""
    return value is None or type(value) in _PLAIN_TYPES


_PLAIN_TYPES = frozenset({bool, int, Decimal, str, dt.date, dt.datetime})


def kind_of_value(value) -> str:
    """The checker type of a plain value (``null`` for None)."""
    if value is None:
        return NULL
    t = type(value)
    if t is bool:
        return BOOLEAN
    if t is int or t is Decimal:
        return NUMBER
    if t is str:
        return TEXT
    if t is dt.datetime:
        return DATETIME
    if t is dt.date:
        return DATE
    raise TypeError(f"{t.__name__} is not a plain expression value")


def check_value(name: str, value, kind: str) -> None:
    """Raise TypeError unless ``value`` is a plain value of type ``kind`` (or None)."""
    if value is None:
        return
    if not is_plain(value):
        what = "a callable" if callable(value) else f"a {type(value).__name__}"
        hint = " (use Decimal for numbers)" if isinstance(value, float) else ""
        raise TypeError(f"value of {name!r} is {what}; expressions take only plain values "
                        f"(None, bool, int, Decimal, str, date, datetime){hint}")
    if type(value) is Decimal and not value.is_finite():
        raise TypeError(f"value of {name!r} is {value}; numbers must be finite")
    if kind == ANY:
        return
    actual = kind_of_value(value)
    if actual != kind:
        raise TypeError(f"value of {name!r} is {word(actual)} {value!r}, but {name!r} is declared {word(kind)}")
