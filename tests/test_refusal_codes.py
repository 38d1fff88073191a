"""Every declared refusal code is in the README's "Refusal codes" table with its
HTTP status, and every row of the table is a declared code."""
from __future__ import annotations

import re

from conftest import REPO


def test_refusal_codes_are_documented_with_their_status():
    import danbao.app  # noqa: F401  (imports every engine, so every code is declared)
    from danbao.engines.refusals import CODES, KIND_STATUS
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Refusal codes"):]
    section = section[:section.index("\n## ", 3)]
    rows = dict(re.findall(r"^\| ([A-Z]{2}\d{3}) \| (\d{3}) \|", section, re.M))
    declared = {code: str(KIND_STATUS[c.kind]) for code, c in CODES.items()}
    assert rows == declared
    assert {"DP001": "403", "DP002": "422", "DP003": "422"}.items() <= rows.items()
