"""Expression errors and their stable codes.

Compile-time problems raise :class:`ExprError` (``EX0xx``); problems found
while evaluating raise :class:`ExprEvalError` (``EX1xx``). The codes are
stable: tools match on them and ``expr/README.md`` lists them all.
"""
from __future__ import annotations

#: Every code with a one-line meaning (the README table is built from the same list).
CODES: dict[str, str] = {
    # compile time
    "EX001": "syntax error (not a single Python-style expression)",
    "EX002": "expression too long (more than 1000 characters)",
    "EX003": "too many parts (more than 200 nodes)",
    "EX004": "nested too deeply (more than 20 levels)",
    "EX010": "construct not allowed (attributes, subscripts, comprehensions, lambda, f-strings, ...)",
    "EX011": "unknown name",
    "EX012": "unknown function, or a call of something that is not a registered function",
    "EX013": "wrong number or type of arguments",
    "EX020": "type mismatch",
    "EX021": "result is not of the expected type",
    "EX022": "text literal is not an option of the enum/code field it is compared with",
    "EX030": "power exponent must be a literal whole number 0..10 (no nested **)",
    "EX031": "literal too long or too large (text over 200 characters, numbers over 28 digits)",
    "EX032": "`in` list empty or longer than 50 values",
    # SQL translation
    "EX040": "a function used has no SQL form",
    "EX041": "no column given for a name the expression uses",
    "EX042": "database dialect not supported (sqlite and postgresql are)",
    "EX043": "the SQL form would be too large or too deeply nested for the database",
    # evaluation
    "EX100": "construct refused at run time (internal safety net)",
    "EX101": "text result too long (more than 10000 characters)",
    "EX102": "a function failed or returned a value of the wrong type",
    "EX103": "number out of range",
    "EX104": "values of different types met at run time",
}


class ExprError(ValueError):
    """A problem with an expression: a stable ``code``, a ``message`` and the
    1-based column ``col`` in the source where it was found (``None`` when
    the problem is the expression as a whole)."""

    def __init__(self, code: str, message: str, col: int | None = None, source: str | None = None):
        if code not in CODES:  # pragma: no cover - programming error
            raise AssertionError(f"unregistered expression error code {code}")
        self.code = code
        self.message = message
        self.col = col
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" at column {self.col}" if self.col else ""
        return f"{self.code}{where}: {self.message}"

    def __reduce__(self):
        return (type(self), (self.code, self.message, self.col, self.source))


class ExprEvalError(ExprError):
    """A problem found while evaluating a compiled expression (``EX1xx``)."""
