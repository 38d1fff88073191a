"""Pack errors: one record per problem, so every problem is reported at once.

Each error names the file, the line of the offending key or item and a stable
code (like Django's system checks), so a consultant can grep for the code in
``metadata/README.md`` and tools can match on it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class PackError:
    """One problem in a pack. ``line`` is 1-based; 0 means the file as a whole
    (it is missing or could not be read)."""
    file: str
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.code} {self.message}"


class ItemChecker:
    """Checks every merged item of one list kind (``kind``: ``scorecards``,
    ``workflows``, ``controls``…) with ``check(name, item)`` and collects each
    problem found, so one run reports them all."""
    kind: str = ""

    def __init__(self, merged):
        self.m = merged
        self.errors: list[PackError] = []

    def error(self, src, code: str, message: str) -> None:
        self.errors.append(PackError(src.file, src.line, code, message))

    def run(self) -> list[PackError]:
        for name, item in getattr(self.m, self.kind).items():
            self.check(name, item)
        return self.errors

    def check(self, name: str, item) -> None:
        raise NotImplementedError


class PackErrors(Exception):
    """Raised by ``load_packs`` when the packs have problems; holds all of them."""

    def __init__(self, errors):
        self.errors = sorted(set(errors))
        super().__init__(format_errors(self.errors))


def format_errors(errors) -> str:
    """One line per error, ``file:line: CODE message``, in the given order."""
    return "\n".join(str(e) for e in errors)


def display_path(path) -> str:
    """The path as shown in errors: relative to the current directory when the
    file lies below it, else absolute; always with forward slashes."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(Path(os.getcwd())).as_posix()
    except ValueError:
        return absolute.as_posix()
