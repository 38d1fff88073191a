"""Rebuild ``gb2260.tsv`` from python-stdnum's ``stdnum/cn/loc.dat`` (dev time only).

Run: ``python platform/danbao/data/make_gb2260.py path/to/loc.dat > platform/danbao/data/gb2260.tsv``.
Nothing imports this module at run time; the platform reads the TSV it writes.
"""
from __future__ import annotations

import re
import sys

HEADER = """\
# GB/T 2260 行政区划代码 with validity years: every province-, prefecture- and county-level
# code in use since 1980, one line per period under one name.
# Edition: the Ministry of Civil Affairs' code table for 2023 (中华人民共和国县以上行政区划代码,
# 2023), plus the later changes the source records (the lines whose `from` is 2024 or
# later). Codes whose `to` is empty are in force.
# Source: python-stdnum 2.2 (2026-01), file stdnum/cn/loc.dat (LGPL-2.1-or-later), itself
# compiled from zh.wikipedia.org 中华人民共和国行政区划代码 (1区–8区), which follows the
# Ministry's yearly tables; regenerated with platform/danbao/data/make_gb2260.py.
# Years: `from` empty = in use before 1980; `to` = last year the code was in force.
# Columns: code<TAB>name<TAB>from<TAB>to
"""

_PERIOD = re.compile(r"^\[(\d{4})?-(\d{4})?\](.*)$")


def rows(lines):
    province = None
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        head, _, rest = line.strip().partition(" ")
        if not line.startswith(" "):
            province = head
            continue
        name = re.search(r'county="([^"]*)"', rest).group(1)
        for part in name.split(","):
            m = _PERIOD.match(part)
            start, end, label = (m.group(1) or "", m.group(2) or "", m.group(3)) if m else ("", "", part)
            yield province + head, label, start, end


def main(path: str) -> None:
    with open(path, encoding="utf-8") as fh:
        out = sorted(set(rows(fh)), key=lambda r: (r[0], r[2] or "0000"))
    sys.stdout.write(HEADER)
    for row in out:
        sys.stdout.write("\t".join(row) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
