"""The pack loader: core and overlay packs load into the expected Meta, and
every kind of broken pack is reported with the right file, line and code."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from danbao.checks import NAMED_CHECKS, check_resident_id, check_uscc
from danbao.meta import schema as pack_schema
from danbao.meta import yamlio
from danbao.meta.loader import PackError, PackErrors, format_errors, load_packs, validate_packs
from danbao.meta.model import Label

REPO = Path(__file__).resolve().parent.parent
CORE = REPO / "metadata" / "core"
EXAMPLE = REPO / "metadata" / "examples" / "jiangsu_credit"
BROKEN = Path(__file__).resolve().parent / "broken_packs"
CORE_ENTITIES = {"bank", "corporate_customer", "shareholder", "key_person",
                 "individual_customer", "family_member", "financial_statement",
                 "guarantee_project", "change_request", "fee_instalment", "bank_credit", "related_party", "bank_account",
                 "credit_record", "lawsuit", "shop", "career_history", "personal_asset", "counter_guarantee",
                 "post_check", "compensation", "recovery", "asset_preservation", "regulatory_position",
                 "department", "department_member"}


@pytest.fixture(scope="module")
def core():
    return load_packs([CORE])


@pytest.fixture(scope="module")
def overlaid():
    return load_packs([CORE, EXAMPLE])


# -- loading the shipped packs ---------------------------------------------------
def test_core_pack_loads(core):
    assert set(core.entities) == CORE_ENTITIES
    assert [p.name for p in core.packs] == ["core"]
    assert core.packs[0].version == "0.1.0"
    assert {"project_manager", "risk_officer"} <= set(core.roles)
    assert set(core.menus) == {"customers", "projects", "settings"}
    assert core.codelists["region_gb2260"].has("320100")
    assert next(i for i in core.codelists["region_gb2260"].items if i.code == "320100").parent == "320000"
    cc = core.entity("corporate_customer")
    assert cc.title == "name"
    assert cc.menu == "customers"
    assert [s.key for s in cc.sections] == ["registration", "overview", "financial", "key_persons", "shareholders",
                                            "related_parties", "bank_accounts", "credit_records", "lawsuits",
                                            "statements", "rating", "exposure", "documents"]
    assert cc.field("uscc").check == "uscc"
    assert cc.field("industry").codelist == "industry_gb4754"
    assert cc.field("basic_bank").target == "bank"
    assert cc.field("basic_bank").column_name == "basic_bank_id"
    assert [f.target for f in cc.children] == ["financial_statement", "shareholder", "key_person", "bank_credit",
                                               "related_party", "bank_account", "credit_record", "lawsuit"]
    assert cc.field("documents").accept == ("image", "document", "audio", "video")
    assert cc.field("employees").max == Decimal("1000000")
    assert cc.field("enterprise_size").options[0].label == Label("大型", "Large")
    assert cc.indexes[0].fields == ("region", "industry")
    assert cc.source.file.endswith("metadata/core/entities/corporate_customer.yaml")
    assert cc.source.line == 1
    assert cc.field("uscc").source.line == 9
    assert core.entity("shareholder").parent == "corporate_customer"
    assert core.entity("individual_customer").field("id_type").default == "resident_id"
    assert core.entity("bank").field("active").default is True


def test_core_industry_labels_keep_their_commas(core):
    # a flow mapping split "Agriculture, forestry, ..." into stray keys before it was quoted
    item = core.codelists["industry_gb4754"].items[0]
    assert item.label.en == "Agriculture, forestry, animal husbandry and fishery"


def test_core_pack_has_no_errors():
    assert validate_packs([CORE]) == []
    assert validate_packs([CORE, EXAMPLE]) == []


def test_example_overlay_gives_the_merged_meta(core, overlaid):
    assert [p.name for p in overlaid.packs] == ["core", "jiangsu_credit"]
    assert overlaid.packs[1].requires == ("core",)
    cc = overlaid.entity("corporate_customer")
    assert cc.label == Label("企业客户", "Business customer")
    names = [f.name for f in cc.fields]
    assert names[:len(core.entity("corporate_customer").fields)] == \
        [f.name for f in core.entity("corporate_customer").fields]
    assert names[-2:] == ["industrial_park", "green_credit"]
    assert cc.field("green_credit").type == "boolean"
    assert cc.field("green_credit").default is False
    overview = next(s for s in cc.sections if s.key == "overview")
    assert overview.label == Label("企业概况", "Overview")
    assert overview.fields[-2:] == ("industrial_park", "green_credit")
    size = cc.field("enterprise_size")
    assert [o.value for o in size.options] == ["large", "medium", "small", "micro", "individual"]
    assert size.label == Label("企业规模", "Enterprise size")       # untouched keys stay
    assert cc.list.filters[-1] == "green_credit"
    assert cc.list.columns == core.entity("corporate_customer").list.columns
    assert len(cc.overlays) == 1 and cc.overlays[0].file.endswith("jiangsu_credit/entities/corporate_customer.yaml")
    assert cc.field("industrial_park").source.file.endswith("jiangsu_credit/entities/corporate_customer.yaml")
    visit = overlaid.entity("site_visit")
    assert visit.field("customer").target == "corporate_customer"
    assert visit.field("media").accept == ("image", "video")
    assert visit.list.order_by == "-visited_on"
    assert overlaid.roles["committee_member"].label.zh == "评审委员"
    assert overlaid.roles["risk_officer"] == core.roles["risk_officer"]
    # the core Meta is untouched by the overlay (load_packs is pure)
    assert core.entity("corporate_customer").label.zh == "对公客户"
    assert overlaid.digest != core.digest


def test_meta_is_immutable(core):
    cc = core.entity("corporate_customer")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cc.title = "uscc"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cc.fields[0].required = False
    with pytest.raises(TypeError):
        core.entities["x"] = cc
    with pytest.raises(TypeError):
        cc.permissions["read"] = ()
    assert isinstance(cc.fields, tuple) and isinstance(cc.sections[0].fields, tuple)
    assert isinstance(cc.field("enterprise_size").options, tuple)
    assert isinstance(cc.permissions["read"], tuple)


def _no_floats(value, seen=None):
    assert not isinstance(value, float), value
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            _no_floats(getattr(value, f.name))
    elif isinstance(value, (tuple, list)):
        for v in value:
            _no_floats(v)
    elif hasattr(value, "items"):
        for k, v in value.items():
            _no_floats(v)


def test_no_float_anywhere(overlaid):
    _no_floats(overlaid)
    assert overlaid.entity("bank").field("margin_ratio").max == Decimal("1")


def test_digest_follows_file_contents(tmp_path):
    copy = tmp_path / "core"
    shutil.copytree(CORE, copy)
    assert load_packs([copy]).digest == load_packs([CORE]).digest   # paths are relative
    bank = copy / "entities" / "bank.yaml"
    bank.write_text(bank.read_text(encoding="utf-8") + "# a comment\n", encoding="utf-8")
    changed = load_packs([copy])
    assert changed.digest != load_packs([CORE]).digest
    assert changed.version.startswith("core@0.1.0#")


# -- defaults -------------------------------------------------------------------
def _pack(root: Path, files: dict[str, str], name="t", requires="[core]") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pack.yaml").write_text(
        f'name: {name}\nversion: "1"\nlabel: {{zh: 测试, en: Test}}\nrequires: {requires}\n', encoding="utf-8")
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


DEFAULTS_PACK = {
    "entities/loan.yaml": """\
entity: loan
label: {zh: 贷款, en: Loan}
permissions: {read: [finance], write: [finance]}
fields:
  - {name: amount, type: money, label: {zh: 金额, en: Amount}}
  - {name: borrower, type: string, label: {zh: 借款人, en: Borrower}}
  - {name: rate, type: rate, label: {zh: 利率, en: Rate}}
  - {name: ratio, type: decimal, label: {zh: 比例, en: Ratio}, default: 0.25}
  - {name: term, type: integer, label: {zh: 期限, en: Term}, default: 12}
  - {name: start_on, type: date, label: {zh: 起始日, en: Start}, default: "2024-01-31"}
  - {name: notes, type: text, label: {zh: 备注, en: Notes}}
  - {name: small, type: decimal, precision: 3, label: {zh: 小, en: Small}}
  - {name: fee, type: money, precision: 12, label: {zh: 费用, en: Fee}}
  - {name: repayments, type: children, target: repayment, label: {zh: 还款, en: Repayments}}
""",
    "entities/repayment.yaml": """\
entity: repayment
parent: loan
label: {zh: 还款, en: Repayment}
permissions: {delete: [manager]}
fields:
  - {name: paid_on, type: date, label: {zh: 还款日, en: Paid on}}
""",
}


def test_defaults(tmp_path):
    meta = load_packs([CORE, _pack(tmp_path / "t", DEFAULTS_PACK)])
    loan = meta.entity("loan")
    assert loan.title == "borrower"                                # first string field
    assert loan.list.columns == ("borrower", "amount", "rate", "ratio", "term")
    assert loan.list.page_size == 20 and loan.list.order_by == "-id"
    assert loan.list.filters == () and loan.list.search == ()
    assert len(loan.sections) == 1
    assert loan.sections[0].key == "main" and loan.sections[0].label == loan.label
    assert loan.sections[0].fields == tuple(f.name for f in loan.fields)
    assert loan.menu is None and loan.icon == "fa-table"
    amount, rate, ratio = loan.field("amount"), loan.field("rate"), loan.field("ratio")
    assert (amount.precision, amount.scale) == (None, 2)
    assert (rate.precision, rate.scale) == (None, 6)
    assert (ratio.precision, ratio.scale) == (18, 4)
    assert (loan.field("small").precision, loan.field("small").scale) == (3, 3)
    assert (loan.field("fee").precision, loan.field("fee").scale) == (12, 2)
    assert loan.field("notes").precision is None
    assert ratio.default == Decimal("0.25") and isinstance(ratio.default, Decimal)
    assert loan.field("term").default == 12
    assert loan.field("start_on").default == dt.date(2024, 1, 31)
    assert dict(loan.permissions) == {"read": ("finance",), "write": ("finance",), "delete": ()}
    # a child takes what it does not declare from its parent
    assert dict(meta.entity("repayment").permissions) == \
        {"read": ("finance",), "write": ("finance",), "delete": ("manager",)}
    assert meta.entity("repayment").is_child


def test_extend_sections_of_an_entity_without_sections(tmp_path):
    base = _pack(tmp_path / "t", DEFAULTS_PACK)
    extra = _pack(tmp_path / "x", {"loan.yaml": """\
extend: loan
fields:
  - {name: collateral, type: text, label: {zh: 抵押物, en: Collateral}}
sections:
  - {key: risk, label: {zh: 风险, en: Risk}, fields: [collateral]}
"""}, name="x", requires="[core, t]")
    loan = load_packs([CORE, base, extra]).entity("loan")
    assert [s.key for s in loan.sections] == ["main", "risk"]
    assert "collateral" not in loan.sections[0].fields
    assert loan.sections[1].fields == ("collateral",)


def test_load_packs_accepts_one_path_and_str(core):
    assert set(load_packs(str(CORE)).entities) == CORE_ENTITIES


# -- errors ---------------------------------------------------------------------
def test_pack_error_format():
    err = PackError("a/b.yaml", 7, "DB220", "field 'x': target 'y' is not a declared entity")
    assert str(err) == "a/b.yaml:7: DB220 field 'x': target 'y' is not a declared entity"
    errors = [PackError("b.yaml", 2, "DB110", "m"), PackError("a.yaml", 9, "DB110", "m"),
              PackError("a.yaml", 3, "DB210", "m")]
    assert format_errors(sorted(errors)).splitlines() == ["a.yaml:3: DB210 m", "a.yaml:9: DB110 m",
                                                          "b.yaml:2: DB110 m"]
    raised = PackErrors(errors)
    assert [e.file for e in raised.errors] == ["a.yaml", "a.yaml", "b.yaml"]
    assert "a.yaml:3: DB210 m" in str(raised)


def _case_paths(case: Path) -> list[Path]:
    listed = case / "packs.txt"
    if not listed.exists():
        return [CORE, case]
    names = [line.strip() for line in listed.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [CORE if n == "@core" else case / n for n in names]


def _expected(case: Path) -> set[tuple[str, int, str]]:
    out = set()
    for line in (case / "expected.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            file, lineno, code = line.split(":")
            out.add((file, int(lineno), code.strip()))
    return out


CASES = sorted(p.name for p in BROKEN.iterdir() if (p / "expected.txt").exists())


def test_there_are_enough_broken_packs():
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES)
def test_broken_pack(case, monkeypatch):
    folder = BROKEN / case
    monkeypatch.chdir(folder)
    paths = [p if p == CORE else p.relative_to(folder) for p in _case_paths(folder)]
    errors = validate_packs(paths)
    got = {(e.file, e.line, e.code) for e in errors}
    assert got == _expected(folder), format_errors(errors)
    assert errors == sorted(errors)
    for e in errors:
        assert e.message and str(e).startswith(f"{e.file}:{e.line}: {e.code} ")
    with pytest.raises(PackErrors) as raised:
        load_packs(paths)
    assert raised.value.errors == errors


def test_three_independent_errors_come_together(monkeypatch):
    monkeypatch.chdir(BROKEN / "three_errors")
    errors = validate_packs([CORE, "."])
    assert len({e.file for e in errors}) == 3


def test_schema_messages_name_path_and_expectation(monkeypatch):
    monkeypatch.chdir(BROKEN / "unknown_field_type")
    (error,) = validate_packs([CORE, "."])
    assert error.message.startswith("fields[1].type: 'strnig' is not one of [string, text,")
    monkeypatch.chdir(BROKEN / "schema_types_and_typos")
    messages = {e.line: e.message for e in validate_packs([CORE, "."])}
    assert "did you mean 'label'" in messages[6]
    assert messages[7] == "fields[0].required: expected true or false, got 'yes'"
    monkeypatch.chdir(BROKEN / "not_an_entity")
    messages = {e.file: e.message for e in validate_packs([CORE, "."])}
    assert "did you mean 'entity'" in messages["entities/typo.yaml"]


def test_errors_are_relative_to_the_current_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    assert validate_packs([Path("metadata/core")]) == []
    pack = _pack(tmp_path / "p", {"x.yaml": "roles: [{name: Bad, label: {zh: 坏, en: Bad}}]\n"})
    (error,) = validate_packs([CORE, pack])
    assert error.file == (pack / "x.yaml").as_posix()      # outside the cwd: absolute
    monkeypatch.chdir(tmp_path)
    (error,) = validate_packs([CORE, pack])
    assert error.file == "p/x.yaml"


# -- malformed input never escapes as an exception -------------------------------------
class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(Decimal, lambda d, v: d.represent_scalar("tag:yaml.org,2002:float", str(v)))
_Dumper.add_representer(yamlio.LineDict, lambda d, v: d.represent_dict(dict(v)))
_Dumper.add_representer(yamlio.LineList, lambda d, v: d.represent_list(list(v)))

_JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.text(max_size=8),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.sampled_from(["name", "type", "label", "zh", "fields", "x"]),
                    st.one_of(st.none(), st.text(max_size=5), st.integers()), max_size=3),
    st.sampled_from(["string", "enum", "children", "reference", "select", "Bad", "id", "bank",
                     "corporate_customer", "[", "^(", "resident_id", "2024-02-30"]),
)
_CORE_DOCS = {p.relative_to(CORE).as_posix(): yamlio.parse(p.read_bytes(), "x")[0]
              for p in sorted(CORE.rglob("*.yaml"))}


def _mutate(doc, choices: list[int], junk):
    """Replace (or delete) one node of ``doc``, chosen by walking ``choices``."""
    node, parent, key = doc, None, None
    for c in choices:
        if isinstance(node, dict) and node:
            key = list(node)[c % len(node)]
        elif isinstance(node, list) and node:
            key = c % len(node)
        else:
            break
        parent, node = node, node[key]
    if parent is None:
        return junk
    if junk == "<delete>":
        del parent[key]
    else:
        parent[key] = junk
    return doc


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=st.sampled_from(sorted(_CORE_DOCS)), choices=st.lists(st.integers(0, 50), max_size=6),
       junk=st.one_of(_JUNK, st.just("<delete>")))
def test_mutated_core_never_raises(tmp_path_factory, file, choices, junk):
    root = tmp_path_factory.mktemp("mut") / "core"
    shutil.copytree(CORE, root)
    doc = _mutate(yamlio.parse((CORE / file).read_bytes(), "x")[0], choices, junk)
    (root / file).write_text(yaml.dump(doc, Dumper=_Dumper, allow_unicode=True), encoding="utf-8")
    errors = validate_packs([root, EXAMPLE])
    assert all(isinstance(e, PackError) and e.line >= 0 for e in errors)
    if errors:
        with pytest.raises(PackErrors):
            load_packs([root, EXAMPLE])
    else:
        load_packs([root, EXAMPLE])


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8")))
def test_any_bytes_parse_to_value_or_errors(data):
    _, errors = yamlio.parse(data, "x.yaml")
    assert all(e.code.startswith("DB10") and e.line >= 1 for e in errors)


def test_odd_files(tmp_path):
    pack = _pack(tmp_path / "p", {
        "a.yaml": "roles:\n  - name: x\n    label: {zh: 甲, en: A}\n  - 42\n",
        "b.yaml": "menus: {key: m}\n",
        "c.yaml": "codelists:\n  - name: c\n    label: {zh: 丙, en: C}\n    items: [{code: 1, label: {zh: 一, en: One}}]\n",
        "d.yaml": "\ufeffroles: []\n",                                # a BOM is fine
        "e.yaml": "entity: [x]\nlabel: {zh: 戊, en: E}\nfields: []\n",
        "f.yaml": "extend: {x: 1}\n",
    })
    errors = {(e.file.split("/")[-1], e.line, e.code): e.message for e in validate_packs([CORE, pack])}
    assert set(errors) == {("a.yaml", 4, "DB110"), ("b.yaml", 1, "DB110"), ("c.yaml", 4, "DB110"),
                           ("e.yaml", 1, "DB110"), ("f.yaml", 1, "DB110")}
    assert "put it in quotes" in errors[("c.yaml", 4, "DB110")]


def test_every_error_code_is_documented_and_exercised():
    import re
    source = "".join(p.read_text(encoding="utf-8") for p in (REPO / "platform/danbao/meta").glob("*.py"))
    emitted = set(re.findall(r'"(DB\d{3})"', source))
    readme = (REPO / "metadata" / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| (DB\d{3}) \|", readme, re.M))
    exercised = {code for case in CASES for _, _, code in _expected(BROKEN / case) if code.startswith("DB")}
    assert emitted == documented
    assert documented == exercised


# -- schemas ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["pack", "content"])
def test_schemas_are_valid_draft_2020_12(kind):
    schema = pack_schema.load_schema(kind)
    Draft202012Validator.check_schema(schema)
    Draft202012Validator.check_schema(pack_schema.inline_refs(schema))
    assert schema["$schema"].endswith("2020-12/schema")


def test_every_core_file_matches_the_content_schema():
    validator = Draft202012Validator(pack_schema.load_schema("content"))
    for path in CORE.rglob("*.yaml"):
        if path.name != "pack.yaml":
            assert not list(validator.iter_errors(yamlio.parse(path.read_bytes(), "x")[0])), path


@settings(max_examples=150, deadline=None)
@given(file=st.sampled_from(sorted(k for k in _CORE_DOCS if k != "pack.yaml")),
       choices=st.lists(st.integers(0, 50), max_size=6), junk=st.one_of(_JUNK, st.just("<delete>")))
def test_fast_predicate_never_accepts_what_jsonschema_refuses(file, choices, junk):
    doc = _mutate(json.loads(json.dumps(_CORE_DOCS[file], default=float)), choices, junk)
    if pack_schema._is_valid("content")(doc):
        assert not list(pack_schema._validator("content").iter_errors(doc))


# -- YAML dialect ---------------------------------------------------------------------
def test_yaml_lines_and_scalars():
    doc, errors = yamlio.parse(b"a: 1\nb: 1.50\nc: yes\nd: 2024-01-01\nlist:\n  - x\n  - {k: v}\n", "f.yaml")
    assert errors == []
    assert doc == {"a": 1, "b": Decimal("1.50"), "c": "yes", "d": "2024-01-01", "list": ["x", {"k": "v"}]}
    assert isinstance(doc["b"], Decimal)
    assert doc.line == 1 and doc.key_line("list") == 5
    assert doc["list"].item_line(0) == 6 and doc["list"].item_line(1) == 7
    assert doc["list"][1].line == 7


@pytest.mark.parametrize("text,line,code", [
    (b"a: [1\nb: 2\n", 2, "DB101"),
    (b"a: 1\nb: 2\na: 3\n", 3, "DB102"),
    (b"a: &x 1\nb: *x\n", 2, "DB103"),
    (b"1: x\n", 1, "DB103"),
    (b"", 1, "DB104"),
    (b"a: 1\n---\nb: 2\n", 2, "DB101"),
    (b"a: b\nc: \xff\n", 2, "DB100"),
    (b"a: b\nc: \x07\n", 2, "DB101"),
    (b"a: !!python/object:os.system x\n", 1, "DB101"),
    (b"a: !!float nan\n", 1, "DB101"),
])
def test_yaml_problems(text, line, code):
    value, errors = yamlio.parse(text, "f.yaml")
    assert [(e.line, e.code) for e in errors] == [(line, code)]


# -- named checks (the full properties are in test_identity_checks.py) -------------------------
def test_uscc_known_codes():
    assert check_uscc("91350100M000100Y43")
    assert check_uscc("91110000600037341L")
    assert not check_uscc("91350100M000100Y44")
    assert not check_uscc("91350100M000100Y4")          # 17 characters
    assert not check_uscc("91350100m000100y43")          # lower case (the field's normalize upper-cases it)
    assert not check_uscc("91350100M000100I43")          # I is not in the alphabet
    assert not check_uscc(None) and not check_uscc(91350100)


def test_resident_id_known_codes():
    today = dt.date(2025, 6, 1)
    assert check_resident_id("11010519491231002X", today)
    assert not check_resident_id("110105194912310021", today)   # wrong check digit
    assert not check_resident_id("11010519491231002x", today)   # lower-case x
    assert not check_resident_id("110105194902300027", today)   # 30 February
    assert not check_resident_id("11010519491231002", today)
    assert not check_resident_id("１１0105194912310021", today)  # full-width digits
    assert not check_resident_id(None, today)


def test_named_checks_table():
    assert {"uscc", "resident_id", "passport", "passport_cn", "permanent_residence"} <= set(NAMED_CHECKS)
    for check in NAMED_CHECKS.values():
        assert callable(check.run) and check.label.zh and check.label.en and check.pattern.startswith("^")


# -- speed ------------------------------------------------------------------------------------
def _synthetic(root: Path, entities=300, fields=30) -> Path:
    types = ["string", "integer", "money", "date", "boolean", "enum", "code", "decimal", "text", "rate"]
    files = {}
    for e in range(entities):
        lines = [f"entity: ent_{e}", f"label: {{zh: 实体{e}, en: Entity {e}}}", "menu: customers", "fields:"]
        for i in range(fields):
            t = types[i % len(types)]
            extra = {"enum": ", options: [{value: a, label: {zh: 甲, en: A}}, {value: b, label: {zh: 乙, en: B}}]",
                     "code": ", codelist: currency", "string": ", max_length: 50", "money": ", min: 0"}.get(t, "")
            lines.append(f"  - {{name: f_{i}, type: {t}, label: {{zh: 字段{i}, en: Field {i}}}{extra}}}")
        lines.append(f"sections:\n  - {{key: main, label: {{zh: 基本, en: Main}}, "
                     f"fields: [{', '.join(f'f_{i}' for i in range(fields))}]}}")
        lines.append("permissions: {read: [manager], write: [manager]}")
        files[f"entities/ent_{e}.yaml"] = "\n".join(lines) + "\n"
    return _pack(root, files, name="big")


def test_a_300_entity_pack_loads_over_core(tmp_path):
    # how long it takes is bench/boot.py's job (load vs parsing the same YAML,
    # per-entity growth): a wall-clock bound here failed CI on a loaded machine
    meta = load_packs([CORE, _synthetic(tmp_path / "big")])
    assert len(meta.entities) == 300 + len(CORE_ENTITIES)
    assert meta.entity("ent_299").field("f_9").type == "rate"
    assert meta.entity("ent_0").field("f_6").codelist == "currency"
