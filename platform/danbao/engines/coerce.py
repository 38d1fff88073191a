"""Turn raw input (form strings or JSON values) into typed field values.

One function per field type, shared by the HTML forms and the REST API, so
both accept and refuse exactly the same things. Every refusal is a
``FieldError`` carrying a zh and an en message; nothing here raises anything
else for bad input, whatever its type (a boolean for an enum, ``{}`` for a
reference, ``1e125`` for an amount).
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

from danbao.meta.model import (CodedLabel, FieldMeta, Label, MONEY_PRECISION, MONEY_SCALE,
                               RATE_PRECISION, RATE_SCALE)

#: Largest value a BIGINT column holds.
INT_LIMIT = 2**63 - 1
#: Record ids (and references to them) are INTEGER columns.
ID_LIMIT = 2**31 - 1
#: C0 control characters other than tab and newlines: never meaningful in a form value,
#: and PostgreSQL refuses NUL outright.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: A text field holds at most this many characters (a paste of a whole book is a mistake).
TEXT_LIMIT = 100_000


class FieldError(Exception):
    """A value a field cannot take; ``message`` is a Label (zh and en), a CodedLabel
    when a rule with a stable code refused it (``code``: ID002, ...)."""

    def __init__(self, zh: str, en: str, code: str | None = None):
        super().__init__(en)
        self.code = code
        self.message = CodedLabel(zh=zh, en=en, code=code) if code else Label(zh=zh, en=en)


def is_blank(raw) -> bool:
    return raw is None or (isinstance(raw, str) and raw.strip() == "")


def coerce_value(field: FieldMeta, raw, *, codelist=None, today: dt.date | None = None):
    """Return the typed value of ``raw`` for ``field``, or None when blank.

    Raises FieldError for anything the field cannot hold. Required-ness,
    uniqueness and references are checked by the caller, which sees the whole
    record and the database; so is a ``check_by`` check, which needs another
    field's value (``check_value``). ``today`` bounds birth dates in checks
    (the caller's clock; today in DANBAO_TIMEZONE when not given).
    """
    if is_blank(raw):
        return None
    convert = _CONVERTERS[field.type]
    value = convert(field, raw, codelist)
    _check_bounds(field, value)
    if field.check and value is not None:
        value = check_value(field, field.check, value, today)
    return value


def check_value(field: FieldMeta, check: str, value: str, today: dt.date | None = None) -> str:
    """Run the named ``check`` on a field's normalised value; return the value to
    store (an old 15-digit ID in its 18-digit form) or raise a coded FieldError."""
    from danbao.checks import local_today, run_check
    value, failure = run_check(check, value, today or local_today(), field.normalize)
    if failure is not None:
        raise FieldError(failure.message.zh, failure.message.en, failure.code)
    return value


def _string(field, raw, _):
    if isinstance(raw, (int, Decimal)) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        raise FieldError("应为文本", "must be text")
    value = raw.strip()
    if CONTROL_CHARS.search(value):
        raise FieldError("含有不可见的控制字符", "contains control characters")
    if field.normalize:
        from danbao.checks.normalize import apply
        value = apply(field.normalize, value)
    limit = field.max_length or (TEXT_LIMIT if field.type == "text" else 255)
    if len(value) > limit:
        raise FieldError(f"不能超过 {limit} 个字符（现为 {len(value)} 个）",
                         f"must be at most {limit} characters (got {len(value)})")
    if field.min_length and len(value) < field.min_length:
        raise FieldError(f"至少 {field.min_length} 个字符", f"must be at least {field.min_length} characters")
    if field.pattern and not re.fullmatch(field.pattern, value):
        raise FieldError("格式不正确", "has the wrong format")
    return value


def _integer(field, raw, _):
    if isinstance(raw, bool):
        raise FieldError("应为整数", "must be a whole number")
    if isinstance(raw, str):
        text = raw.strip().replace(",", "")
        if not re.fullmatch(r"[+-]?\d{1,19}", text):
            raise FieldError("应为整数", "must be a whole number")
        raw = int(text)
    elif isinstance(raw, float) or isinstance(raw, Decimal):
        if not Decimal(str(raw)).is_finite() or Decimal(str(raw)) != int(raw):
            raise FieldError("应为整数", "must be a whole number")
        raw = int(raw)
    if not isinstance(raw, int):
        raise FieldError("应为整数", "must be a whole number")
    if abs(raw) > INT_LIMIT:
        raise FieldError("数值过大", "is too large")
    return raw


def _digits_for(field):
    if field.type == "money":
        return MONEY_PRECISION, MONEY_SCALE
    if field.type == "rate":
        return RATE_PRECISION, RATE_SCALE
    return field.precision or 18, field.scale if field.scale is not None else 4


def _decimal(field, raw, _):
    if isinstance(raw, bool):
        raise FieldError("应为数字", "must be a number")
    if isinstance(raw, str):
        raw = raw.strip().replace(",", "").replace("，", "")
        if field.type == "rate" and raw.endswith(("%", "％")):
            return _percent(field, raw[:-1])
    elif isinstance(raw, float):
        raw = repr(raw)
    elif not isinstance(raw, (int, Decimal)):
        raise FieldError("应为数字", "must be a number")
    try:
        value = Decimal(raw)
    except (InvalidOperation, ValueError):
        raise FieldError("应为数字", "must be a number") from None
    if not value.is_finite():
        raise FieldError("应为有限的数字", "must be a finite number")
    precision, scale = _digits_for(field)
    whole = precision - scale
    if value != 0 and value.adjusted() >= whole:
        raise FieldError(f"数值过大：整数部分最多 {whole} 位", f"is too large: at most {whole} digits before the decimal point")
    step = Decimal(1).scaleb(-scale)
    if value.as_tuple().exponent < -scale and value != value.quantize(step):
        raise FieldError(f"最多 {scale} 位小数", f"must have at most {scale} decimal places")
    value = value.quantize(step)
    return value


def _percent(field, raw: str):
    """A rate typed as a percentage ("1.8%" is 0.018), exact in Decimal."""
    try:
        value = Decimal(raw.strip()) / 100
    except (InvalidOperation, ValueError):
        raise FieldError("应为数字或百分比（如 1.8%）", "must be a number or a percentage (e.g. 1.8%)") from None
    if not value.is_finite():
        raise FieldError("应为有限的数字", "must be a finite number")
    return _decimal(field, format(value, "f"), None)


def _boolean(field, raw, _):
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        text = raw.strip().lower()
        if text in ("1", "true", "yes", "on", "y", "是"):
            return True
        if text in ("0", "false", "no", "off", "n", "否"):
            return False
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    raise FieldError("应为是或否", "must be yes or no")


def _date(field, raw, _):
    if isinstance(raw, dt.datetime):
        return raw.date()
    if isinstance(raw, dt.date):
        return raw
    if not isinstance(raw, str):
        raise FieldError("应为日期（YYYY-MM-DD）", "must be a date (YYYY-MM-DD)")
    try:
        value = dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise FieldError("应为日期（YYYY-MM-DD）", "must be a date (YYYY-MM-DD)") from None
    return value


def _datetime(field, raw, _):
    if isinstance(raw, dt.datetime):
        return raw.replace(tzinfo=None)
    if not isinstance(raw, str):
        raise FieldError("应为日期时间（YYYY-MM-DD HH:MM）", "must be a date and time (YYYY-MM-DD HH:MM)")
    try:
        value = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise FieldError("应为日期时间（YYYY-MM-DD HH:MM）", "must be a date and time (YYYY-MM-DD HH:MM)") from None
    if value.tzinfo is not None:
        # stored as naive local time (Asia/Shanghai by default)
        from danbao.config import local_tz
        try:
            value = value.astimezone(local_tz()).replace(tzinfo=None)
        except (OverflowError, ValueError):
            raise FieldError("日期时间超出范围", "date and time out of range") from None
    return value


def _enum(field, raw, _):
    if not isinstance(raw, str) or raw not in {o.value for o in field.options}:
        allowed = ", ".join(o.value for o in field.options)
        raise FieldError(f"不是有效选项（可选：{allowed}）", f"is not one of the options ({allowed})")
    return raw


def _code(field, raw, codelist):
    if not isinstance(raw, str) or codelist is None or not codelist.has(raw):
        raise FieldError(f"不是代码表“{field.codelist}”中的代码", f"is not a code of list '{field.codelist}'")
    return raw


def _reference(field, raw, _):
    """A reference is an id; whether the row exists is checked against the database."""
    if isinstance(raw, bool):
        raise FieldError("应为记录编号", "must be a record id")
    if isinstance(raw, str) and re.fullmatch(r"\d{1,18}", raw.strip()):
        raw = int(raw.strip())
    if not isinstance(raw, int) or raw <= 0 or raw > ID_LIMIT:
        raise FieldError("应为记录编号", "must be a record id")
    return raw


def _user(field, raw, _):
    """A user is a user id; whether the account exists is checked against the database."""
    try:
        return _reference(field, raw, _)
    except FieldError:
        raise FieldError("应为用户编号", "must be a user id") from None


_CONVERTERS = {
    "string": _string, "text": _string, "integer": _integer,
    "decimal": _decimal, "money": _decimal, "rate": _decimal,
    "boolean": _boolean, "date": _date, "datetime": _datetime,
    "enum": _enum, "code": _code, "reference": _reference,
    "user": _user,
}


def _check_bounds(field: FieldMeta, value) -> None:
    if field.type not in ("integer", "decimal", "money", "rate"):
        return
    if field.min is not None and value < field.min:
        raise FieldError(f"不能小于 {field.min}", f"must be at least {field.min}")
    if field.max is not None and value > field.max:
        raise FieldError(f"不能大于 {field.max}", f"must be at most {field.max}")


def to_text(value) -> str | None:
    """A stable text form of a typed value, for the audit log."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)
