"""Credit scoring: the engine on plain values, stored history, the screens and the API."""
from __future__ import annotations

import datetime as dt
import json
import random
from decimal import Decimal as D

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy.orm import Session

from conftest import CORE_PACK
from danbao.demo import make_uscc
from danbao.engines.records import Actor, RecordService, ValidationFailed
from danbao.engines.scoring import Scorer, ScoringError, load_score, score_record, scores_of
from danbao.meta.loader import load_packs
from danbao.model.builder import build_models
from danbao.model.engine import make_engine
from danbao.model.migrate import ensure_schema
from webfixtures import add_user, csrf_from, jwt, login, make_app

TODAY = dt.date(2026, 11, 29)
META = load_packs([CORE_PACK])
GOOD_INPUTS = {"industry_outlook": "good", "management": "strong", "credit_record": "clean", "lawsuits": "none"}
#: A statement whose ratios land in known bands (see metadata/core/scorecards/sme_corporate.yaml).
STATEMENT = dict(total_assets=1000, total_liabilities=500, current_assets=600, current_liabilities=400,
                 inventory=200, interest_expense=10, profit_before_tax=90, net_profit=60, revenue=1200,
                 accounts_receivable=100, cost_of_sales=900)


def corp_values(tax_grade="A", prev_revenue=1000, **lines):
    values = {"tax_grade": tax_grade}
    values.update({f"fs__{k}": D(v) for k, v in {**STATEMENT, **lines}.items()})
    if prev_revenue is not None:
        values["fs_prev__revenue"] = D(prev_revenue)
    return values


def by_code(result):
    return {i.indicator.code: i for i in result.items}


# -- the engine on plain values ---------------------------------------------------
def test_every_indicator_lands_in_its_band_and_the_total_is_the_weighted_sum():
    result = Scorer(META, "sme_corporate").score(corp_values(), GOOD_INPUTS, today=TODAY)
    items = by_code(result)
    # debt ratio 50% -> band [40, 55) = 85 points; current ratio 1.5 -> [1.5, 2) = 90; sales growth 20% -> 90
    assert (items["debt_ratio"].value, items["debt_ratio"].points) == (D(50), D(85))
    assert (items["current_ratio"].value, items["current_ratio"].points) == (D("1.5"), D(90))
    assert items["quick_ratio"].points == 100          # (600 - 200) / 400 = 1 is the start of [1, ∞)
    assert items["sales_growth"].value == 20 and items["sales_growth"].points == 90
    assert items["tax_credit"].value == "A" and items["tax_credit"].points == 100
    assert items["debt_ratio"].weighted == D("8.50")   # 85 × 10 ÷ 100
    assert result.total == sum(i.weighted for i in result.items) == D("94.10")
    assert result.grade == "AAA" and not result.knockouts


def test_band_edges_are_half_open():
    scorer = Scorer(META, "sme_corporate")
    at_edge = by_code(scorer.score(corp_values(total_liabilities=550, total_assets=1000), GOOD_INPUTS, today=TODAY))
    below = by_code(scorer.score(corp_values(total_liabilities="549.99", total_assets=1000), GOOD_INPUTS, today=TODAY))
    assert at_edge["debt_ratio"].points == 70 and below["debt_ratio"].points == 85


def test_no_statement_is_recorded_as_not_computable_and_scored_by_the_missing_rule():
    scorer = Scorer(META, "sme_corporate")
    result = scorer.score({"tax_grade": "B"}, GOOD_INPUTS, today=TODAY, has_latest=False, has_previous=False)
    items = by_code(result)
    debt = items["debt_ratio"]
    assert not debt.computable and debt.missing_rule == "worst" and debt.points == 0
    assert "no financial statement" in debt.reason.en and "财务报表" in debt.reason.zh
    inventory = items["inventory_turnover"]           # declares missing: exclude
    assert inventory.missing_rule == "exclude" and inventory.weighted == 0
    # the 5 excluded weight points are shared: 8 of the remaining 95 weigh 100 × 8 / 95
    assert items["management"].weighted == D("8.42")
    assert result.total == sum(i.weighted for i in result.items)


def test_a_zero_denominator_names_the_line_and_never_crashes():
    items = by_code(Scorer(META, "sme_corporate").score(corp_values(total_assets=0, total_liabilities=0),
                                                         GOOD_INPUTS, today=TODAY))
    assert not items["debt_ratio"].computable
    assert items["debt_ratio"].reason.en == "division by zero: latest Total assets"
    assert items["debt_ratio"].points == 0                # worst band


def test_missing_previous_statement_only_affects_growth():
    items = by_code(Scorer(META, "sme_corporate").score(corp_values(prev_revenue=None), GOOD_INPUTS,
                                                         today=TODAY, has_previous=False))
    assert not items["sales_growth"].computable and "previous" in items["sales_growth"].reason.en
    assert all(i.computable for c, i in items.items() if c != "sales_growth")


def test_no_interest_expense_counts_as_ample_cover():
    items = by_code(Scorer(META, "sme_corporate").score(corp_values(interest_expense=0), GOOD_INPUTS, today=TODAY))
    assert items["interest_cover"].computable and items["interest_cover"].points == 100


def test_knock_outs_cap_the_grade_whatever_the_points():
    scorer = Scorer(META, "sme_corporate")
    tax_d = scorer.score(corp_values(tax_grade="D"), GOOD_INPUTS, today=TODAY)
    assert tax_d.grade_before_cap == "AA" and tax_d.grade == "C"
    assert [k.code for k in tax_d.knockouts] == ["tax_grade_d"]
    serious = scorer.score(corp_values(), {**GOOD_INPUTS, "credit_record": "serious"}, today=TODAY)
    assert serious.grade == "C" and [k.code for k in serious.knockouts] == ["serious_credit_record"]
    insolvent = scorer.score(corp_values(total_liabilities=1200), GOOD_INPUTS, today=TODAY)
    assert "negative_equity" in [k.code for k in insolvent.knockouts]
    assert scorer.card.rank(insolvent.grade) >= scorer.card.rank("B")


def test_a_cap_never_raises_a_grade():
    scorer = Scorer(META, "sme_corporate")
    poor = dict(GOOD_INPUTS, industry_outlook="restricted", management="weak", lawsuits="major")
    result = scorer.score(corp_values(total_liabilities=1200, revenue=100, net_profit=-50), poor, today=TODAY)
    assert result.grade == result.grade_before_cap == "C"


def test_analyst_inputs_are_checked_all_at_once():
    scorer = Scorer(META, "sme_corporate")
    with pytest.raises(ValidationFailed) as exc:
        scorer.check_inputs({"industry_outlook": "booming", "management": ""})
    assert set(exc.value.errors) == {"industry_outlook", "management", "credit_record", "lawsuits"}
    assert "good" in exc.value.errors["industry_outlook"].en


def test_individual_card_uses_age_from_the_scoring_date():
    scorer = Scorer(META, "individual")
    values = {"birth_date": dt.date(1996, 11, 30), "total_debt": D(0), "annual_income": D(200000),
              "housing": "owned", "marital_status": "married"}
    inputs = {"credit_record": "clean", "job_stability": "long"}
    young = by_code(scorer.score(values, inputs, today=dt.date(2026, 11, 29)))["age"]
    older = by_code(scorer.score(values, inputs, today=dt.date(2026, 12, 1)))["age"]
    assert (young.value, young.points) == (29, 60) and (older.value, older.points) == (30, 100)


money = st.one_of(st.none(), st.decimals(min_value=-10**6, max_value=10**7, places=2, allow_nan=False))
LINES = ["total_assets", "total_liabilities", "current_assets", "current_liabilities", "inventory",
         "accounts_receivable", "revenue", "cost_of_sales", "interest_expense", "profit_before_tax", "net_profit"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.fixed_dictionaries({k: money for k in LINES}), prev=money,
       tax=st.sampled_from(["A", "B", "M", "C", "D", None]),
       inputs=st.fixed_dictionaries({
           "industry_outlook": st.sampled_from(["good", "stable", "declining", "restricted"]),
           "management": st.sampled_from(["strong", "adequate", "weak"]),
           "credit_record": st.sampled_from(["clean", "minor", "serious"]),
           "lawsuits": st.sampled_from(["none", "minor", "major"])}))
def test_any_data_gives_a_score_that_adds_up(lines, prev, tax, inputs):
    scorer = Scorer(META, "sme_corporate")
    values = {"tax_grade": tax, **{f"fs__{k}": v for k, v in lines.items()}, "fs_prev__revenue": prev}
    result = scorer.score(values, inputs, today=TODAY)
    assert result.total == sum(i.weighted for i in result.items)
    assert D(0) <= result.total <= D("100.05")          # rounding of up to 14 parts, half a cent each
    for item in result.items:
        assert item.computable == (item.reason is None)
        assert item.computable or item.missing_rule in ("worst", "points", "exclude")
        assert D(0) <= item.points <= D(100)
    assert scorer.card.rank(result.grade) >= scorer.card.rank(result.grade_before_cap)
    assert result.grade_before_cap == scorer.card.grade_for(result.total)


INPUT_OPTIONS = {i.code: [o.value for o in i.options] for i in META.scorecards["sme_corporate"].indicators if i.input}


@settings(max_examples=200, deadline=None)
@given(choice=st.fixed_dictionaries({k: st.sampled_from(v) for k, v in INPUT_OPTIONS.items()}),
       which=st.sampled_from(sorted(INPUT_OPTIONS)), data=st.data())
def test_a_better_analyst_choice_never_lowers_the_total(choice, which, data):
    scorer = Scorer(META, "sme_corporate")
    ind = scorer.card.indicator(which)
    other = data.draw(st.sampled_from(INPUT_OPTIONS[which]))
    before = scorer.score(corp_values(), choice, today=TODAY)
    after = scorer.score(corp_values(), {**choice, which: other}, today=TODAY)
    if ind.option(other).points >= ind.option(choice[which]).points:
        assert after.total >= before.total
    else:
        assert after.total < before.total


def test_points_rule_and_all_excluded(tmp_path):
    pack = tmp_path / "p"
    pack.mkdir()
    (pack / "pack.yaml").write_text('name: p\nversion: "1"\nlabel: {zh: 测试, en: Test}\nrequires: [core]\n')
    (pack / "cards.yaml").write_text("""
scorecards:
  - code: tiny
    label: {zh: 小卡, en: Tiny}
    entity: bank
    missing: {rule: exclude}
    grades:
      - {grade: G, label: {zh: 好, en: Good}, min: 50}
      - {grade: P, label: {zh: 差, en: Poor}, below: 50}
    groups:
      - key: g
        label: {zh: 组, en: Group}
        indicators:
          - code: line
            label: {zh: 授信, en: Line}
            weight: 60
            formula: "credit_line / 10000"
            bands: [{below: 100, points: 20}, {min: 100, points: 100}]
          - code: fixed
            label: {zh: 固定, en: Fixed}
            weight: 40
            formula: "credit_line / 0"
            missing: {rule: points, points: 75}
            bands: [{below: 0, points: 0}, {min: 0, points: 100}]
""")
    meta = load_packs([CORE_PACK, pack])
    scorer = Scorer(meta, "tiny")
    result = scorer.score({"credit_line": D(2000000)}, {}, today=TODAY)
    items = by_code(result)
    assert items["fixed"].missing_rule == "points" and items["fixed"].points == 75
    assert result.total == D(60) + D(30) and result.grade == "G"
    # no credit line: 'line' is excluded, 'fixed' still scores 75 with all the weight
    alone = scorer.score({"credit_line": None}, {}, today=TODAY)
    assert by_code(alone)["line"].missing_rule == "exclude" and alone.total == D(75)
    (pack / "cards.yaml").write_text((pack / "cards.yaml").read_text().replace(
        "missing: {rule: points, points: 75}", "missing: {rule: exclude}"))
    with pytest.raises(ScoringError):
        Scorer(load_packs([CORE_PACK, pack]), "tiny").score({"credit_line": None}, {}, today=TODAY)


# -- stored history, on both databases --------------------------------------------
@pytest.fixture
def world(database_url):
    models = build_models(META)
    engine = make_engine(database_url)
    ensure_schema(engine, models)
    session = Session(engine)
    yield models, session
    session.close()
    engine.dispose()


def _customer(session, models, statements=()):
    svc = RecordService(models, session, Actor(None, "tester"))
    rows = [dict(period_end=period.isoformat(), **{k: str(v) for k, v in lines.items()}) for period, lines in statements]
    return svc.create("corporate_customer", {"name": "评分企业", "uscc": make_uscc(random.Random(7), "320100"),
                                             "tax_grade": "A", "statements": rows}).id


def test_scoring_stores_history_and_writes_the_grade_to_the_customer(world):
    models, session = world
    cid = _customer(session, models, [(dt.date(2024, 12, 31), {**STATEMENT, "revenue": 1000}),
                                      (dt.date(2025, 12, 31), STATEMENT),
                                      (dt.date(2026, 12, 31), {**STATEMENT, "total_liabilities": 990})])
    actor = Actor(None, "risk")
    first = score_record(session, models, META, "sme_corporate", cid, inputs=GOOD_INPUTS, actor=actor, as_of=TODAY)
    score, items = load_score(session, models, first)
    # the 2026 statement is after the scoring date: the 2025 one is the latest, 2024 the previous
    assert score["statement_period"] == dt.date(2025, 12, 31)
    assert score["total"] == D("94.10") and score["grade"] == "AAA" and score["scored_by"] == "risk"
    assert [i["code"] for i in items][:2] == ["debt_ratio", "current_ratio"] and len(items) == 14
    customer = session.get(models.cls("corporate_customer"), cid)
    session.refresh(customer)
    assert (customer.credit_score, customer.credit_grade, customer.credit_scored_on) == (D("94.10"), "AAA", TODAY)
    audit = models.system["danbao_audit"]
    changed = {r.field for r in session.execute(sa.select(audit.c.field).where(
        audit.c.record_id == cid, audit.c.entity == "corporate_customer", audit.c.action == "update"))}
    assert {"credit_score", "credit_grade", "credit_scored_on"} <= changed
    second = score_record(session, models, META, "sme_corporate", cid, inputs=dict(GOOD_INPUTS, lawsuits="major"),
                          actor=actor, as_of=dt.date(2027, 1, 15))
    history = scores_of(session, models, "corporate_customer", cid)
    assert [h["id"] for h in history] == [second, first]
    assert load_score(session, models, first)[0]["total"] == D("94.10")     # history is never overwritten
    later = load_score(session, models, second)[0]
    assert later["statement_period"] == dt.date(2026, 12, 31) and later["total"] < D("94.10")


def test_bad_inputs_store_nothing(world):
    models, session = world
    cid = _customer(session, models)
    with pytest.raises(ValidationFailed):
        score_record(session, models, META, "sme_corporate", cid, inputs={"management": "strong"},
                     actor=Actor(None, "x"), as_of=TODAY)
    assert scores_of(session, models, "corporate_customer", cid) == []
    customer = session.get(models.cls("corporate_customer"), cid)
    assert customer.credit_grade is None


# -- screens and API ------------------------------------------------------------------
@pytest.fixture(scope="module")
def app(module_database_url, tmp_path_factory):
    app = make_app(module_database_url, tmp_path_factory.mktemp("inst"))
    add_user(app, "risk", "risk_officer")
    add_user(app, "auditor", "auditor")
    return app


def _new_customer(app, name="屏幕企业", seed=11):
    rt = app.extensions["danbao"]
    with app.app_context():
        svc = RecordService(rt.models, rt.session, Actor(None, "t"))
        return svc.create("corporate_customer", {
            "name": name, "uscc": make_uscc(random.Random(seed), "320100"), "tax_grade": "B",
            "statements": [dict(period_end="2025-12-31", **{k: str(v) for k, v in STATEMENT.items()})]}).id


def test_score_through_the_screens(app):
    cid = _new_customer(app)
    client = login(app.test_client(), "risk")
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        page = client.get(f"/e/corporate_customer/{cid}")
        assert page.status_code == 200 and 'id="score-new"' in page.text
        form = client.get(f"/scores/corporate_customer/{cid}/new")
        assert form.status_code == 200 and 'name="input-industry_outlook"' in form.text
        token = csrf_from(form.text)
        bad = client.post(f"/scores/corporate_customer/{cid}/new",
                          data={"csrf_token": token, "input-industry_outlook": "good"})
        assert bad.status_code == 422 and 'data-error-for="management"' in bad.text
        data = {"csrf_token": token, "as_of": "2026-06-30", **{f"input-{k}": v for k, v in GOOD_INPUTS.items()}}
        done = client.post(f"/scores/corporate_customer/{cid}/new", data=data)
        assert done.status_code == 302
        shown = client.get(done.headers["Location"])
        assert shown.status_code == 200
        assert 'id="score-grade">AA<' in shown.text and "资产负债率" in shown.text
        # sales growth has no previous statement: shown as not computable with its reason
        assert "缺少上一期财务报表" in shown.text
        again = client.get(f"/e/corporate_customer/{cid}")
        assert "2026-06-30" in again.text and "AA" in again.text
        prefilled = client.get(f"/scores/corporate_customer/{cid}/new")
        assert '<option value="strong" selected>' in prefilled.text
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def test_read_only_roles_see_scores_but_cannot_score(app):
    cid = _new_customer(app, "只读企业", 12)
    client = login(app.test_client(), "auditor")
    assert client.get(f"/scores/corporate_customer/{cid}/new").status_code == 403
    assert 'id="score-new"' not in client.get(f"/e/corporate_customer/{cid}").text


def test_score_through_the_api(app):
    cid = _new_customer(app, "接口企业", 13)
    client = app.test_client()
    headers = jwt(client, "risk")
    missing = client.post(f"/api/v1/corporate_customer/{cid}/scores", json={"inputs": {}}, headers=headers)
    assert missing.status_code == 422 and set(missing.get_json()["errors"]) == set(GOOD_INPUTS)
    future = client.post(f"/api/v1/corporate_customer/{cid}/scores",
                         json={"inputs": GOOD_INPUTS, "as_of": "2999-01-01"}, headers=headers)
    assert future.status_code == 422 and "as_of" in future.get_json()["errors"]
    made = client.post(f"/api/v1/corporate_customer/{cid}/scores?_l_=en",
                       json={"scorecard": "sme_corporate", "inputs": GOOD_INPUTS, "as_of": "2026-06-30"},
                       headers=headers)
    assert made.status_code == 201, made.data
    body = made.get_json()
    assert body["grade"] == "AA" and body["total"] == str(sum(D(i["weighted"]) for i in body["items"]))
    debt = next(i for i in body["items"] if i["code"] == "debt_ratio")
    assert (debt["value"], debt["band"], debt["points"]) == ("50", "40 ≤ x < 55", "85.00")
    growth = next(i for i in body["items"] if i["code"] == "sales_growth")
    assert growth["computable"] is False and growth["missing_rule"] == "worst" and "previous" in growth["reason"]
    listed = client.get(f"/api/v1/corporate_customer/{cid}/scores", headers=headers).get_json()["result"]
    assert [s["id"] for s in listed] == [body["id"]]
    one = client.get(f"/api/v1/scores/{body['id']}?_l_=en", headers=headers)
    assert one.status_code == 200 and json.loads(one.data)["items"] == body["items"]
    assert client.get("/api/v1/scores/99999999", headers=headers).status_code == 404
    assert client.get(f"/api/v1/corporate_customer/{cid + 10000}/scores", headers=headers).status_code == 404
    assert client.post(f"/api/v1/bank/{cid}/scores", json={}, headers=headers).status_code in (403, 404)
