"""The guarantee business in metadata (metadata/BUSINESS.md): products, fee
schemes, counter-guarantee kinds, ledger kinds and settings load into frozen
Meta with exact Decimals, overlay across packs by key, become code lists, and
every mistake is a pack error with file, line and code. Also the ``numbering``
of string fields and the ``actions`` of workflow steps.

Uses only its own packs (tests/packs/business_ok, tests/broken_packs/bad_business),
never metadata/core.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from danbao.meta import names
from danbao.meta.build import decimal_or_none
from danbao.meta.business import numbering_problem, plain
from danbao.meta.loader import PackError, PackErrors, format_errors, load_packs, validate_packs
from danbao.meta.model import FeeTier, Label
from danbao.meta.workflows import workflow_from_dict, workflow_to_dict
from test_loader import _mutate

HERE = Path(__file__).resolve().parent
OK = HERE / "packs" / "business_ok"
BAD = HERE / "broken_packs" / "bad_business"


@pytest.fixture(scope="module")
def meta():
    return load_packs([OK])


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "business_ok"
    shutil.copytree(OK, root)
    return root


def _overlay(tmp_path: Path, files: dict[str, str]) -> Path:
    """A second pack laid over business_ok."""
    root = tmp_path / "overlay"
    root.mkdir()
    (root / "pack.yaml").write_text('name: overlay\nversion: "1"\nlabel: {zh: 覆盖, en: Overlay}\n'
                                    "requires: [business_ok]\n", encoding="utf-8")
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(Decimal, lambda d, v: d.represent_scalar("tag:yaml.org,2002:float", str(v)))


def _codes(errors) -> set[tuple[str, int, str]]:
    return {(Path(e.file).name, e.line, e.code) for e in errors}


# -- a good pack ----------------------------------------------------------------------
def test_products_are_built(meta):
    loan = meta.products["bank_loan"]
    assert loan.label == Label("银行贷款担保", "Bank loan guarantee")
    assert (loan.entity, loan.category, loan.business_line) == ("guarantee_project", "financing", "loan")
    assert (loan.workflow, loan.fee_scheme, loan.review_fee) == ("project_approval", "loan_guarantee_fee", "review_fee")
    assert loan.deposit_rate == Decimal("0.10") and isinstance(loan.deposit_rate, Decimal)
    assert loan.min_coverage == Decimal("1.5")
    assert loan.amount_min == Decimal(100000) and isinstance(loan.amount_min, Decimal)
    assert loan.amount_max == Decimal("50000000.00")
    assert (loan.check_every_months, loan.term_max_months, loan.active) == (3, 36, True)
    assert loan.counter_guarantees == ("mortgage", "credit")
    assert loan.sections == ("basic", "counter_guarantees")
    assert [(d.code, d.required, d.stage) for d in loan.documents] == [
        ("business_licence", True, "application"), ("loan_contract", True, "contract"),
        ("site_photos", False, "application")]
    assert loan.source.file.endswith("business/products.yaml") and loan.source.line == 2
    bid = meta.products["bid_bond"]
    assert dict(bid.scorecards) == {"corporate": "simple"}
    assert (bid.business_line, bid.review_fee, bid.deposit_rate, bid.documents, bid.active) == (
        "", None, None, (), False)
    with pytest.raises(TypeError):
        bid.scorecards["individual"] = "x"                    # frozen all the way down


def test_fee_schemes_are_built(meta):
    tiered = meta.fee_schemes["loan_guarantee_fee"]
    assert tiered.rate is None
    assert tiered.tiers == (FeeTier(Decimal(0), Decimal(5000000), Decimal("0.02")),
                            FeeTier(Decimal(5000000), Decimal(20000000), Decimal("0.018")),
                            FeeTier(Decimal(20000000), None, Decimal("0.015")))
    assert all(isinstance(t.rate, Decimal) and isinstance(t.min, Decimal) for t in tiered.tiers)
    assert (tiered.tier_mode, tiered.frequency, tiered.rounding, tiered.remainder) == (
        "progressive", "quarterly", "ROUND_HALF_EVEN", "first")
    assert (tiered.minimum, tiered.maximum, tiered.amount) == (Decimal(3000), None, None)
    flat = meta.fee_schemes["flat_fee"]
    assert (flat.basis, flat.rate, flat.tiers) == ("flat_rate", Decimal("0.005"), ())
    assert (flat.tier_mode, flat.rounding, flat.remainder) == ("whole", "ROUND_HALF_UP", "last")   # defaults
    fixed = meta.fee_schemes["review_fee"]
    assert (fixed.basis, fixed.amount, fixed.frequency) == ("fixed", Decimal("2000.00"), "once")


def test_counter_guarantee_and_ledger_kinds_are_built(meta):
    mortgage = meta.counter_guarantee_kinds["mortgage"]
    assert mortgage.asset_codelist == "mortgage_asset"
    assert dict(mortgage.discounts) == {"real_estate": Decimal("0.70"), "vehicle": Decimal("0.5")}
    assert mortgage.discount("real_estate") == Decimal("0.70")
    assert mortgage.discount("boat") == mortgage.discount(None) == Decimal("0.40")
    assert meta.counter_guarantee_kinds["credit"].default_discount == Decimal(0)
    refund = meta.ledger_kinds["deposit_refunded"]
    assert dict(refund.effects) == {"deposit_held": -1}
    assert (refund.statuses, refund.not_above, refund.allow_negative) == (("guaranteeing", "rejected"), "deposit_held",
                                                                          True)
    received = meta.ledger_kinds["deposit_received"]
    assert (dict(received.effects), received.statuses, received.not_above, received.allow_negative) == (
        {"deposit_held": 1}, (), None, False)


def test_settings_are_plain_values(meta):
    assert meta.setting("project_entity") == "guarantee_project"
    net = meta.setting("net_assets")
    assert net == Decimal("500000000.00") and isinstance(net, Decimal)
    assert meta.setting("leverage_limit") == 10
    assert meta.setting("project_in_force_statuses") == ("guaranteeing",)
    assert meta.setting("ledger_maker") == {"roles": ("project_manager",), "fields": ()}
    assert type(meta.setting("ledger_maker")) is dict
    assert meta.setting("nothing", "fallback") is None          # declared null is a value
    assert meta.setting("undeclared", "fallback") == "fallback"
    assert meta.settings["net_assets"].label == Label("净资产(元)", "Net assets (CNY)")
    assert isinstance(meta.settings, MappingProxyType)


def test_products_and_counter_guarantee_kinds_are_code_lists(meta):
    products = meta.codelists["product"]
    assert [(i.code, i.label) for i in products.items] == [
        ("bank_loan", Label("银行贷款担保", "Bank loan guarantee")), ("bid_bond", Label("投标保函", "Bid bond"))]
    assert products.label == Label("担保产品", "Guarantee product")
    kinds = meta.codelists["counter_guarantee_kind"]
    assert [i.code for i in kinds.items] == ["mortgage", "credit"]
    project = meta.entity("guarantee_project")
    assert project.field("product").codelist == "product"
    assert project.field("product").default == "bank_loan"          # checked against the generated codes
    assert meta.entity("collateral").field("kind").codelist == "counter_guarantee_kind"


def test_no_business_means_no_generated_code_lists(tmp_path):
    root = _copy(tmp_path)
    shutil.rmtree(root / "business")
    (root / "entities" / "project.yaml").write_text(
        (root / "entities" / "project.yaml").read_text(encoding="utf-8").replace(", default: bank_loan", ""),
        encoding="utf-8")
    errors = validate_packs([root])
    # the fields naming them now name undeclared code lists
    assert {(e.code, e.file.split("/")[-1]) for e in errors} == {("DB224", "project.yaml"),
                                                                 ("DB224", "collateral.yaml")}


def test_numbering_and_actions_are_built(meta):
    assert meta.entity("guarantee_project").field("project_no").numbering == "DB-{year}{month}-{seq:05d}"
    assert meta.entity("guarantee_project").field("amount").numbering is None
    wf = meta.workflows["project_standard"]
    assert wf.step("approved").actions == ("generate_fee_schedule", "refresh_exposure")
    assert wf.step("review").actions == ()
    data = json.loads(json.dumps(workflow_to_dict(wf)))
    assert data["steps"][1]["actions"] == ["generate_fee_schedule", "refresh_exposure"]
    assert "actions" not in data["steps"][0]        # absent when empty: older workflows keep their digest
    pinned = workflow_from_dict(data, wf.digest)
    assert pinned.step("approved").actions == wf.step("approved").actions
    assert pinned.step("review").actions == ()


def test_workflow_action_registry():
    assert names.WORKFLOW_ACTIONS["generate_fee_schedule"] == Label("生成收费计划", "Generate the fee schedule")
    assert names.WORKFLOW_ACTIONS["refresh_exposure"] == Label("更新敞口", "Refresh exposures")


def test_a_registered_action_may_be_used(tmp_path, monkeypatch):
    root = _copy(tmp_path)
    wf = root / "workflows.yaml"
    wf.write_text(wf.read_text(encoding="utf-8").replace("refresh_exposure]", "notify_bank]"), encoding="utf-8")
    (error,) = validate_packs([root])
    assert (error.code, error.line) == ("DB279", 14)
    assert "unknown action 'notify_bank'" in error.message
    monkeypatch.setitem(names.WORKFLOW_ACTIONS, "notify_bank", Label("通知银行", "Notify the bank"))
    assert validate_packs([root]) == []
    monkeypatch.delitem(names.WORKFLOW_ACTIONS, "notify_bank")
    names.register_workflow_action("notify_bank", Label("通知银行", "Notify the bank"))
    try:
        assert load_packs([root]).workflows["project_standard"].step("approved").actions[-1] == "notify_bank"
    finally:
        del names.WORKFLOW_ACTIONS["notify_bank"]


# -- overlays ----------------------------------------------------------------------------
def test_a_later_pack_overrides_items_key_by_key(tmp_path):
    over = _overlay(tmp_path, {"business.yaml": """\
products:
  - code: bank_loan
    label: {zh: 流动资金贷款担保, en: Working capital loan guarantee}
    deposit_rate: 0.2
  - code: bond
    label: {zh: 债券担保, en: Bond guarantee}
    entity: guarantee_project
    category: financing
    business_line: bond
    workflow: project_approval
    fee_scheme: loan_guarantee_fee
fee_schemes:
  - {code: loan_guarantee_fee, tiers: null, rate: 0.025}
settings:
  - {name: net_assets, value: 800000000}
"""})
    meta = load_packs([OK, over])
    loan = meta.products["bank_loan"]
    assert loan.label.en == "Working capital loan guarantee"
    assert loan.deposit_rate == Decimal("0.2")
    assert loan.fee_scheme == "loan_guarantee_fee" and loan.counter_guarantees == ("mortgage", "credit")   # kept
    assert loan.source.file.endswith("business/products.yaml")        # where it was first declared
    scheme = meta.fee_schemes["loan_guarantee_fee"]
    assert (scheme.rate, scheme.tiers, scheme.minimum) == (Decimal("0.025"), (), Decimal(3000))
    assert meta.setting("net_assets") == 800000000
    assert [i.code for i in meta.codelists["product"].items] == ["bank_loan", "bid_bond", "bond"]
    assert meta.codelists["product"].label_of("bank_loan", "zh") == "流动资金贷款担保"


def test_an_overlay_can_break_what_was_valid(tmp_path):
    over = _overlay(tmp_path, {"business.yaml": """\
fee_schemes:
  - {code: loan_guarantee_fee, rate: 0.025}
products:
  - {code: bank_loan, workflow: project_standard_v2}
"""})
    assert _codes(validate_packs([OK, over])) == {("business.yaml", 2, "DB284"), ("business.yaml", 4, "DB281")}


def test_an_overlay_may_not_declare_the_generated_code_lists(tmp_path):
    over = _overlay(tmp_path, {"lists.yaml": """\
codelists:
  - name: counter_guarantee_kind
    label: {zh: 反担保, en: Counter-guarantee}
    items: [{code: cash, label: {zh: 现金, en: Cash}}]
"""})
    (error,) = validate_packs([OK, over])
    assert (Path(error.file).name, error.line, error.code) == ("lists.yaml", 2, "DB289")
    assert "declare counter_guarantee_kinds:" in error.message


def test_new_items_need_their_keys_and_one_pack_declares_an_item_once(tmp_path):
    over = _overlay(tmp_path, {"business.yaml": """\
products:
  - {code: new_product, label: {zh: 新, en: New}}
counter_guarantee_kinds:
  - {code: cash, label: {zh: 现金, en: Cash}}
settings:
  - {name: a, value: 1}
  - {name: a, value: 2}
"""})
    errors = validate_packs([OK, over])
    assert _codes(errors) == {("business.yaml", 2, "DB111"), ("business.yaml", 4, "DB111"),
                              ("business.yaml", 7, "DB212")}
    messages = {e.line: e.message for e in errors}
    assert messages[2] == "new product 'new_product' needs entity, category, workflow, fee_scheme"
    assert messages[4] == "new counter-guarantee kind 'cash' needs default_discount"


# -- mistakes ------------------------------------------------------------------------------
def _expected(case: Path) -> set[tuple[str, int, str]]:
    out = set()
    for line in (case / "expected.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            file, lineno, code = line.split(":")
            out.add((file, int(lineno), code.strip()))
    return out


def test_bad_business_pack(monkeypatch):
    monkeypatch.chdir(BAD)
    errors = validate_packs(["."])
    assert {(e.file, e.line, e.code) for e in errors} == _expected(BAD), format_errors(errors)
    assert {e.code for e in errors} >= {f"DB{n}" for n in range(279, 290)}
    with pytest.raises(PackErrors):
        load_packs(["."])
    messages = {(e.file, e.line): e.message for e in errors}
    assert messages[("business.yaml", 22)] == ("product 'wrong_workflow_entity': workflow 'customer_review' "
                                              "approves customer, not the product's entity 'project'")
    assert messages[("business.yaml", 67)] == ("fee scheme 'bad_tiers': tier below 500 is not above 1000 "
                                              "(tiers go in ascending order)")
    assert messages[("entities/project.yaml", 5)].endswith("uses {yr}; only {year}, {month} and {seq} may be used")
    assert messages[("lists.yaml", 27)].startswith("workflow 'approval' step 'review': unknown action 'send_fax'")


def test_documents_need_the_document_kind_code_list(tmp_path):
    root = _copy(tmp_path)
    roles = root / "roles.yaml"
    text = roles.read_text(encoding="utf-8")
    start, end = text.index("  - name: document_kind"), text.index("  - name: mortgage_asset")
    roles.write_text(text[:start] + text[end:], encoding="utf-8")
    (error,) = validate_packs([root])
    assert (Path(error.file).name, error.line, error.code) == ("products.yaml", 13, "DB282")
    assert "need a code list 'document_kind'" in error.message


def test_unknown_names_are_held_back_when_a_file_is_unreadable(tmp_path):
    root = _copy(tmp_path)
    (root / "business" / "fees.yaml").write_text("fee_schemes: [\n", encoding="utf-8")   # the schemes may be in it
    errors = validate_packs([root])
    assert {e.code for e in errors} == {"DB101"}


@pytest.mark.parametrize("fmt", ["DB-{year}-{seq:05d}", "{seq}", "P{year}{month}{seq:012d}", "{{x}}-{seq:01d}",
                                 "合同-{year}-{seq:04d}"])
def test_good_numbering(fmt):
    assert numbering_problem(fmt) is None


@pytest.mark.parametrize("fmt, problem", [
    ("DB-{year}", "needs {seq}"),
    ("{seq}-{seq}", "more than once"),
    ("{seq:5d}", "formats seq as '5d'"),
    ("{seq:013d}", "formats seq as '013d'"),
    ("{seq:00d}", "formats seq as '00d'"),
    ("{seq:x}", "formats seq as 'x'"),
    ("{year:04d}-{seq}", "formats year as '04d'"),
    ("{day}-{seq}", "uses {day}"),
    ("{}-{seq}", "uses {}"),
    ("{seq!r}", "uses {seq!r}"),
    ("{seq.real}", "uses {seq.real}"),
    ("{seq", "is not a format"),
    ("x}{seq}", "is not a format"),
])
def test_bad_numbering(fmt, problem):
    assert problem in numbering_problem(fmt)


def test_numbering_only_on_string_fields(tmp_path):
    root = _copy(tmp_path)
    project = root / "entities" / "project.yaml"
    project.write_text(project.read_text(encoding="utf-8").replace(
        "{name: amount, type: money,", '{name: amount, type: money, numbering: "{seq}",').replace(
        "DB-{year}{month}-{seq:05d}", "DB-{year}{month}-{seq:5d}"), encoding="utf-8")
    assert _codes(validate_packs([root])) == {("project.yaml", 8, "DB288"), ("project.yaml", 11, "DB231")}


# -- numbers are exact --------------------------------------------------------------------
def test_floats_become_decimals_through_their_text():
    assert decimal_or_none(0.1) == Decimal("0.1")
    assert decimal_or_none(Decimal("0.10")) == Decimal("0.10") and decimal_or_none(3) == Decimal(3)
    assert decimal_or_none(None) is None
    assert plain({"a": [0.1, 2], "b": {"c": 0.7}}) == {"a": (Decimal("0.1"), 2), "b": {"c": Decimal("0.7")}}


def test_business_meta_is_frozen(meta):
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.products["bank_loan"].deposit_rate = Decimal(0)
    with pytest.raises(TypeError):
        meta.products["x"] = meta.products["bank_loan"]


# -- malformed business metadata never escapes as an exception ---------------------------
_DOCS = {p.relative_to(OK).as_posix(): p for p in sorted(OK.rglob("*.yaml")) if p.name != "pack.yaml"}
_JUNK = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.decimals("-2", "2", places=2), st.text(max_size=6),
                  st.lists(st.sampled_from(["mortgage", "x", "basic", "deposit_held"]), max_size=2),
                  st.dictionaries(st.sampled_from(["deposit_held", "real_estate", "corporate", "Bad"]),
                                  st.one_of(st.integers(-2, 2), st.text(max_size=3)), max_size=2),
                  st.sampled_from(["ROUND_UP", "guarantee_project", "project_approval", "{seq}", "{seq", "bank_loan"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=st.sampled_from(sorted(_DOCS)), choices=st.lists(st.integers(0, 30), min_size=1, max_size=6),
       junk=st.one_of(_JUNK, st.just("<delete>")))
def test_mutated_business_pack_never_raises(tmp_path_factory, file, choices, junk):
    root = tmp_path_factory.mktemp("mut") / "business_ok"
    shutil.copytree(OK, root)
    doc = _mutate(yaml.safe_load(_DOCS[file].read_text(encoding="utf-8")), choices, junk)
    (root / file).write_text(yaml.dump(doc, Dumper=_Dumper, allow_unicode=True), encoding="utf-8")
    errors = validate_packs([root])
    assert all(isinstance(e, PackError) and e.line >= 0 for e in errors)
    if not errors:
        load_packs([root])


def test_a_document_for_some_customers_names_an_entity_the_project_refers_to(tmp_path):
    root = _copy(tmp_path)
    products = root / "business" / "products.yaml"
    text = products.read_text(encoding="utf-8")
    products.write_text(text.replace("      - {code: business_licence}",
                                     "      - {code: business_licence, customers: [customer]}"), encoding="utf-8")
    meta = load_packs([root])
    (licence,) = [d for d in next(iter(meta.products.values())).documents if d.code == "business_licence"]
    assert licence.customers == ("customer",)
    assert licence.applies_to("customer") and licence.applies_to(None) and not licence.applies_to("person")
    products.write_text(text.replace("      - {code: business_licence}",
                                     "      - {code: business_licence, customers: [collateral]}"), encoding="utf-8")
    (error,) = validate_packs([root])
    assert (error.file.endswith("products.yaml"), error.code) == (True, "DB282")
    assert error.message.endswith("customers: no field of 'guarantee_project' refers to 'collateral'")
