"""What an omitted key means, and what a declared ``default:`` value is.

Kept in one place because both the cross-checks (is the default title a
column?) and the builder (which title goes into Meta?) need the same answer.
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

from danbao.meta.model import (COLUMN_TYPES, MONEY_PRECISION, MONEY_SCALE, RATE_PRECISION,
                               RATE_SCALE)

PAGE_SIZE = 20
ORDER_BY = "-id"
DECIMAL_PRECISION = 18
DECIMAL_SCALE = 4
#: Default list columns: the title plus this many more column fields.
EXTRA_COLUMNS = 4
#: Key of the one section an entity gets when it declares none.
DEFAULT_SECTION = "main"

NUMERIC_TYPES = frozenset({"integer", "decimal", "money", "rate"})
TEXT_TYPES = frozenset({"string", "text"})

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?$")


def default_title(fields) -> str | None:
    """The first string field, else the first column field (``fields`` maps
    names to objects with ``get('type')``)."""
    columns = [n for n, f in fields.items() if f.get("type") in COLUMN_TYPES]
    strings = [n for n in columns if fields[n].get("type") == "string"]
    return (strings or columns or [None])[0]


def default_columns(fields, title: str) -> list[str]:
    """The title, then up to EXTRA_COLUMNS more column fields in declared order."""
    others = [n for n, f in fields.items() if f.get("type") in COLUMN_TYPES and n != title]
    return [title] + others[:EXTRA_COLUMNS]


def precision_scale(ftype: str, precision, scale) -> tuple[int | None, int | None]:
    """Decimal places a numeric column keeps. Money and rates have a scale
    fixed by type; their precision is stored only when declared."""
    if ftype == "decimal":
        precision = DECIMAL_PRECISION if precision is None else precision
        return precision, min(DECIMAL_SCALE, precision) if scale is None else scale
    if ftype == "money":
        return precision, MONEY_SCALE
    if ftype == "rate":
        return precision, RATE_SCALE
    return None, None


def column_precision(ftype: str, precision) -> int | None:
    """Total digits the column holds, declared or implied by the type."""
    if precision is not None:
        return precision
    return {"decimal": DECIMAL_PRECISION, "money": MONEY_PRECISION,
            "rate": RATE_PRECISION}.get(ftype)


def number_fits(ftype: str, value, precision=None, scale=None) -> str | None:
    """Why ``value`` (a YAML number) cannot be stored in a ``ftype`` column, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        return "must be a number"
    if ftype == "integer":
        if isinstance(value, Decimal) and value != value.to_integral_value():
            return "must be a whole number"
        if abs(value) > 2**63 - 1:
            return "is too large"
        return None
    precision, scale = precision_scale(ftype, precision, scale)
    precision = column_precision(ftype, precision)
    try:
        number = Decimal(value).normalize()
    except InvalidOperation:  # pragma: no cover - YAML numbers always convert
        return "must be a number"
    if number.as_tuple().exponent < -scale:
        return f"has more than {scale} decimal places"
    if number != 0 and number.adjusted() + 1 > precision - scale:
        return f"has more than {precision - scale} digits before the decimal point"
    return None


def typed_default(ftype: str, value, field, codes=None):
    """The ``default:`` of a field as the runtime stores it (Decimal, date, ...).

    ``field`` answers ``get(key)`` for the field's other keys; ``codes`` is the
    set of codes of its code list when known. Raises ValueError with a reason
    when the value does not fit the field.
    """
    if ftype in TEXT_TYPES:
        if not isinstance(value, str):
            raise ValueError("must be text (put it in quotes)")
        max_length, min_length = field.get("max_length"), field.get("min_length")
        if isinstance(max_length, int) and len(value) > max_length:
            raise ValueError(f"is longer than max_length {max_length}")
        if isinstance(min_length, int) and len(value) < min_length:
            raise ValueError(f"is shorter than min_length {min_length}")
        return value
    if ftype in NUMERIC_TYPES:
        reason = number_fits(ftype, value, field.get("precision"), field.get("scale"))
        if reason:
            raise ValueError(reason)
        number = int(value) if ftype == "integer" else Decimal(value)
        low, high = field.get("min"), field.get("max")
        if _is_number(low) and number < low:
            raise ValueError(f"is less than min {low}")
        if _is_number(high) and number > high:
            raise ValueError(f"is more than max {high}")
        return number
    if ftype == "boolean":
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if ftype == "date":
        if isinstance(value, str) and _DATE.match(value):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise ValueError("must be a real date written YYYY-MM-DD")
    if ftype == "datetime":
        if isinstance(value, str) and _DATETIME.match(value):
            try:
                return dt.datetime.fromisoformat(value)
            except ValueError:
                pass
        raise ValueError("must be a real date and time written YYYY-MM-DD HH:MM[:SS]")
    if ftype == "enum":
        values = [o.get("value") for o in field.get("options") or () if hasattr(o, "get")]
        if not isinstance(value, str) or value not in values:
            raise ValueError(f"is not one of the options ({', '.join(map(str, values))})")
        return value
    if ftype == "code":
        if not isinstance(value, str):
            raise ValueError("must be a code (text)")
        if codes is not None and value not in codes:
            raise ValueError(f"is not a code of list '{field.get('codelist')}'")
        return value
    raise ValueError(f"a {ftype} field takes no default")


def _is_number(value) -> bool:
    return isinstance(value, (int, Decimal)) and not isinstance(value, bool)
