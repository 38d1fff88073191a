"""A bulk load of 10,000 generated individual customers through the REST API
(issue 15): a mix of ID types and typing styles, a share of them wrong in a
known part. Every valid one is stored normalised, every invalid one is refused
with its reason (the stable code), and nothing else is written.

Deterministic: a fixed seed; birth dates are well before any real today.
"""
from __future__ import annotations

import datetime as dt
import random

import pytest
import sqlalchemy as sa

from danbao.checks import gb2260, resident, uscc
from webfixtures import add_user, jwt, make_app

COUNT = 10_000
SEED = 15
COUNTIES = sorted(c for c in gb2260.periods() if gb2260.is_county(c) and gb2260.current(c))


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _typed(rng: random.Random, value: str) -> str:
    """How a person might type ``value``: as printed, in groups, lower case, full width."""
    style = rng.choice(["plain", "groups", "lower", "full", "hyphens"])
    if style == "groups":
        return " ".join(value[i:i + 4] for i in range(0, len(value), 4))
    if style == "hyphens":
        return value[:6] + "-" + value[6:]
    if style == "lower":
        return value.lower()
    if style == "full":
        return _full_width(value)
    return value


def _valid(rng: random.Random, n: int) -> tuple[str, str, str]:
    """(id_type, what is typed before styling, the normalised value stored)."""
    born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randint(0, 60 * 365))
    kind = rng.choice(["resident_id", "resident_id", "resident_id_15", "hk_macao_residence_permit",
                       "taiwan_residence_permit", "permanent_residence", "permanent_residence_old",
                       "passport_cn", "passport", "hk_macao_permit", "taiwan_permit"])
    seq = n % 1000
    if kind == "resident_id":
        value = resident.build(rng.choice(COUNTIES), born, seq)
        return kind, value, value
    if kind == "resident_id_15":
        born = born.replace(year=1940 + n % 59)
        short = f"{rng.choice(COUNTIES)}{born:%y%m%d}{seq:03d}"
        return "resident_id", short, resident.from_15(short)
    if kind == "hk_macao_residence_permit":
        value = resident.build(rng.choice(["810000", "820000"]), born, seq)
        return kind, value, value
    if kind == "taiwan_residence_permit":
        value = resident.build("830000", born, seq)
        return kind, value, value
    if kind == "permanent_residence":
        body = f"9{rng.choice(['11', '31', '44'])}{rng.randint(1, 999):03d}{born:%Y%m%d}{seq:03d}"
        return kind, body + resident.check_char(body), body + resident.check_char(body)
    if kind == "permanent_residence_old":
        value = f"{rng.choice(['USA', 'GBR', 'DEU'])}{rng.choice(['11', '31'])}{born:%y%m%d}{seq:03d}{n % 10}"
        return "permanent_residence", value, value
    if kind == "passport_cn":
        value = rng.choice(["E", "G"]) + f"{n:08d}" if rng.random() < 0.5 else f"E{rng.choice('ABCDEFGHJKLMNP')}{n:07d}"
        return kind, value, value
    if kind == "passport":
        value = rng.choice(["X", "C", "P", "K"]) + f"{n:07d}" + rng.choice(["", "A", "B7"])
        return kind, value, value
    if kind == "hk_macao_permit":
        value = rng.choice("HM") + f"{n:08d}"
        return kind, value, value
    value = f"{n:08d}"
    return "taiwan_permit", value, value


def _invalid(rng: random.Random, n: int) -> tuple[str, str, str]:
    """(id_type, value, the code it must be refused with)."""
    born = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randint(0, 40 * 365))
    good = resident.build(rng.choice(COUNTIES), born, n % 1000)
    case = rng.choice(["check", "region", "future", "early", "format", "permit_region", "passport_cn"])
    if case == "check":
        wrong = next(c for c in "0123456789X" if c != good[17])
        return "resident_id", good[:17] + wrong, "ID004"
    if case == "region":
        return "resident_id", resident.build(rng.choice(["000000", "704339", "838196", "990000"]), born, 1), "ID002"
    if case == "future":
        return "resident_id", resident.build("110101", dt.date(2099, 1, 1), n % 1000), "ID003"
    if case == "early":
        return "resident_id", resident.build("110101", dt.date(1800, 1, 1), n % 1000), "ID003"
    if case == "format":
        return "resident_id", good[:10] + "A" + good[11:], "ID001"
    if case == "permit_region":
        return "taiwan_residence_permit", resident.build("810000", born, n % 1000), "ID002"
    return "passport_cn", f"D{n:08d}", "ID001"


def _payloads():
    rng = random.Random(SEED)
    for n in range(COUNT):
        if rng.random() < 0.2:
            id_type, value, code = _invalid(rng, n)
            yield n, {"name": f"客户{n}", "id_type": id_type, "id_no": value}, None, code
        else:
            id_type, value, stored = _valid(rng, n)
            yield n, {"name": f"客户{n}", "id_type": id_type, "id_no": _typed(rng, value)}, stored, None


@pytest.fixture(scope="module")
def app(module_database_url, tmp_path_factory):
    app = make_app(module_database_url, tmp_path_factory.mktemp("bulk"))
    add_user(app, "pm", "project_manager")
    yield app
    from wfapifixtures import dispose
    dispose(app)


def test_ten_thousand_customers_through_the_api(app):
    client = app.test_client()
    headers = jwt(client, "pm")
    runtime = app.extensions["danbao"]
    table = runtime.models.cls("individual_customer").__table__
    with app.app_context():
        before = runtime.session.execute(sa.select(sa.func.count()).select_from(table)).scalar()
    stored, refused = {}, {}
    for n, body, want, code in _payloads():
        resp = client.post("/api/v1/individual_customer/", json=body, headers=headers)
        if want is not None:
            assert resp.status_code == 201, (body, resp.get_json())
            assert resp.get_json()["result"]["id_no"] == want, body
            stored[want] = body["id_type"]
        else:
            assert resp.status_code == 422, (body, resp.get_json())
            answer = resp.get_json()
            assert answer["codes"] == {"id_no": code}, (body, answer)
            assert set(answer["errors"]) == {"id_no"}
            refused[n] = answer["errors"]["id_no"]
    assert len(stored) + len(refused) == COUNT and len(refused) > COUNT // 10
    with app.app_context():
        rows = runtime.session.execute(sa.select(table.c.id_type, table.c.id_no)).all()
    assert len(rows) == before + len(stored)                    # nothing else was written
    assert {no: t for t, no in rows} == stored                  # and each stored as normalised
