"""The guarantee business in metadata: products, fee schemes, counter-guarantee
kinds, ledger kinds and settings (metadata/BUSINESS.md); their checks and
their frozen form.

Like scorecards and workflows, each item is judged once every pack is laid
over the earlier ones, so an overlay may fix or break what an earlier pack
declared. A product must name things that exist (its entity, workflow, fee
schemes, counter-guarantee kinds, scorecards, documents and sections); a fee
scheme must be computable without guessing (a rate or tiers, ascending tiers,
a known rounding); a ledger kind may only move the known balances. Each
problem is a pack error at the key or item that is wrong (codes DB280–DB289).

Products and counter-guarantee kinds also become code lists (``product``,
``counter_guarantee_kind``) before the cross-checks run, so an entity field can
be ``type: code, codelist: product`` and get its options from them.

The ``numbering`` of string fields is checked here too: it is how a project
(or any record) gets its business number.
"""
from __future__ import annotations

import decimal
import string
from decimal import Decimal
from types import MappingProxyType

from danbao.meta import names
from danbao.meta.build import decimal_or_none as _dec, label as _label
from danbao.meta.defaults import DEFAULT_SECTION
from danbao.meta.errors import PackError
from danbao.meta.model import (LEDGER_BALANCES, CounterGuaranteeKindMeta, DocumentRequirement, FeeSchemeMeta,
                               FeeTier, LedgerKindMeta, ProductMeta, SettingMeta, Source)
from danbao.meta.overlay import EntityDraft, Layered, Merged, key_source
from danbao.meta.yamlio import LineDict, LineList

#: The code lists made from business items, with their labels.
PRODUCT_CODELIST = "product"
COUNTER_GUARANTEE_CODELIST = "counter_guarantee_kind"
_SYNTHESIZED = {
    PRODUCT_CODELIST: ("products", {"zh": "担保产品", "en": "Guarantee product"}),
    COUNTER_GUARANTEE_CODELIST: ("counter_guarantee_kinds", {"zh": "反担保方式", "en": "Counter-guarantee kind"}),
}
#: The code list a product's ``documents`` codes come from.
DOCUMENT_CODELIST = "document_kind"
#: The ``decimal`` module's rounding names a fee scheme may use.
ROUNDINGS = frozenset(n for n in dir(decimal) if n.startswith("ROUND_"))
#: What a ``numbering`` format may contain besides text.
NUMBERING_KEYS = ("year", "month", "seq")
MAX_SEQ_WIDTH = 12
#: Codes whose errors say "unknown name X": held back when some file could not be read.
RESOLUTION_CODES = frozenset({"DB280", "DB281", "DB282", "DB287"})

ZERO, ONE = Decimal(0), Decimal(1)


def _number(value) -> bool:
    return isinstance(value, (int, Decimal)) and not isinstance(value, bool)


# -- code lists made from products and counter-guarantee kinds ------------------
def synthesize_codelists(merged: Merged) -> list[PackError]:
    """Add the ``product`` and ``counter_guarantee_kind`` code lists to ``merged``.

    Runs between the overlay and the cross-checks, so code fields naming them
    are checked like any other. A pack's own code list of either name would be
    merged with the generated one behind its author's back: it is refused
    (DB289) and left as declared, so fields using it give no further errors.
    """
    errors = []
    for name, (kind, list_label) in _SYNTHESIZED.items():
        declared = merged.codelists.get(name)
        if declared is not None:
            at = declared.src("name")
            errors.append(PackError(at.file, at.line, "DB289",
                                    f"code list '{name}' is made from the {kind.replace('_', ' ')}: "
                                    f"declare {kind}: instead of a code list of that name"))
            continue
        table: dict[str, Layered] = getattr(merged, kind)
        if table:
            merged.codelists[name] = _codelist_layer(name, list_label, table)
    return errors


def _codelist_layer(name: str, list_label: dict, table: dict[str, Layered]) -> Layered:
    """A code list draft whose items are the business items. Its codes are unique
    by construction, so no check reports against its lines: they all point at
    the first item."""
    first = next(iter(table.values())).at
    items = LineList([LineDict({"code": code, "label": item.get("label")}, line=item.at.line)
                      for code, item in table.items()], line=first.line)
    layer = Layered(first)
    layer.values.update(name=name, label=list_label, items=items)
    layer.where.update(name=first, label=first, items=first)
    return layer


# -- checks ----------------------------------------------------------------------
class BusinessChecker:
    def __init__(self, merged: Merged):
        self.m = merged
        self.errors: list[PackError] = []
        # what a product's workflow may name: a group or one workflow's code -> the entities they approve
        self.workflow_groups: dict[str, set] = {}
        for code, wf in merged.workflows.items():
            for name in {wf.get("group", code), code}:
                self.workflow_groups.setdefault(name, set()).add(wf.get("entity"))

    def error(self, src: Source, code: str, message: str) -> None:
        self.errors.append(PackError(src.file, src.line, code, message))

    def run(self) -> list[PackError]:
        for code, product in self.m.products.items():
            self._product(code, product)
        for code, scheme in self.m.fee_schemes.items():
            self._fee_scheme(code, scheme)
        for code, kind in self.m.counter_guarantee_kinds.items():
            self._counter_guarantee_kind(code, kind)
        for code, kind in self.m.ledger_kinds.items():
            self._ledger_kind(code, kind)
        for entity in self.m.entities.values():
            for name, f in entity.fields.items():
                if f.get("type") == "string" and isinstance(f.get("numbering"), str):
                    self._numbering(entity, name, f)
        return self.errors

    # -- numbers ------------------------------------------------------------------
    def _range(self, value, src: Source, where: str, *, high: Decimal | None = None) -> None:
        """``value`` (if given) must be a number >= 0 and, with ``high``, <= high."""
        if value is None:
            return
        if not _number(value):
            self.error(src, "DB283", f"{where} {value!r} is not a number")
        elif value < 0 or (high is not None and value > high):
            bounds = f"between 0 and {high}" if high is not None else "0 or more"
            self.error(src, "DB283", f"{where} {value} is not {bounds}")

    def _order(self, layer: Layered, low_key: str, high_key: str, where: str) -> None:
        low, high = layer.get(low_key), layer.get(high_key)
        if _number(low) and _number(high) and low > high:
            self.error(layer.newest(low_key, high_key), "DB283",
                       f"{where}: {low_key} {low} is more than {high_key} {high}")

    # -- products -------------------------------------------------------------------
    def _product(self, code: str, p: Layered) -> None:
        where = f"product '{code}'"
        entity = p.get("entity")
        draft = self.m.entities.get(entity) if isinstance(entity, str) else None
        if isinstance(entity, str) and draft is None:
            self.error(p.src("entity"), "DB280", f"{where}: entity '{entity}' is not declared")
        self._workflow(where, p, entity if draft is not None else None)
        for key in ("fee_scheme", "review_fee"):
            scheme = p.get(key)
            if isinstance(scheme, str) and scheme not in self.m.fee_schemes:
                self.error(p.src(key), "DB281", f"{where}: {key} '{scheme}' is not a fee scheme "
                                                f"(fee schemes: {', '.join(self.m.fee_schemes) or 'none'})")
        for kind, src in p.items("counter_guarantees"):
            if kind not in self.m.counter_guarantee_kinds:
                self.error(src, "DB281", f"{where}: '{kind}' is not a counter-guarantee kind")
        self._scorecards(where, p)
        self._documents(where, p, draft)
        if draft is not None:
            self._sections(where, p, draft)
        self._range(p.get("deposit_rate"), p.src("deposit_rate"), f"{where}: deposit_rate", high=ONE)
        self._range(p.get("min_coverage"), p.src("min_coverage"), f"{where}: min_coverage")
        for key in ("amount_min", "amount_max"):
            self._range(p.get(key), p.src(key), f"{where}: {key}")
        self._order(p, "amount_min", "amount_max", where)

    def _workflow(self, where: str, p: Layered, entity: str | None) -> None:
        """The approval the product's projects go through: a group (or a single
        workflow's code) bound to the product's own entity."""
        value = p.get("workflow")
        for i, name in enumerate(_routes(value)):
            src = Source(p.src("workflow").file, value.item_line(i)) if isinstance(value, LineList) \
                else p.src("workflow")
            bound = self.workflow_groups.get(name)
            if bound is None:
                self.error(src, "DB281", f"{where}: workflow '{name}' is neither a workflow group "
                                         f"nor a workflow code")
            elif entity is not None and entity not in bound:
                self.error(p.newest("workflow", "entity"), "DB281",
                           f"{where}: workflow '{name}' approves {', '.join(sorted(map(str, bound)))}, "
                           f"not the product's entity '{entity}'")

    def _scorecards(self, where: str, p: Layered) -> None:
        """Customer kind -> scorecard: the kind is a plain name, the card exists."""
        cards = p.get("scorecards")
        if not isinstance(cards, LineDict):
            return
        file = p.src("scorecards").file
        for kind, card in cards.items():
            src = Source(file, cards.key_line(kind))
            reason = names.unsafe_reason(kind)
            if reason:
                self.error(src, "DB281", f"{where}: scorecards: customer kind '{kind}' {reason}")
            if not isinstance(card, str) or card not in self.m.scorecards:
                self.error(src, "DB281", f"{where}: scorecards: {kind}: {card!r} is not a scorecard "
                                         f"(scorecards: {', '.join(self.m.scorecards) or 'none'})")

    def _documents(self, where: str, p: Layered, draft: EntityDraft | None) -> None:
        items = p.items("documents")
        if not items:
            return
        codelist = self.m.codelists.get(DOCUMENT_CODELIST)
        if codelist is None:
            self.error(p.src("documents"), "DB282", f"{where}: documents need a code list "
                                                    f"'{DOCUMENT_CODELIST}' to name them, and none is declared")
            return
        codes = {item.get("code") for item, _ in codelist.items("items") if isinstance(item, LineDict)}
        seen = set()
        for doc, src in items:
            if not isinstance(doc, LineDict):
                continue
            doc_code = doc.get("code")
            if doc_code not in codes:
                self.error(src, "DB282", f"{where}: document '{doc_code}' is not a code of "
                                         f"'{DOCUMENT_CODELIST}'")
            elif doc_code in seen:
                self.error(src, "DB282", f"{where}: document '{doc_code}' is listed twice")
            seen.add(doc_code)
            self._document_customers(where, doc, src, draft)

    def _document_customers(self, where: str, doc: LineDict, src: Source, draft: EntityDraft | None) -> None:
        """``customers`` names entities the product's projects refer to as their customer."""
        targets = set()
        if draft is not None:
            targets = {f.get("target") for f in draft.fields.values() if f.get("type") == "reference"}
        for name in doc.get("customers") or ():
            if name not in self.m.entities:
                self.error(src, "DB282", f"{where}: document '{doc.get('code')}': customers: "
                                         f"'{name}' is not an entity")
            elif draft is not None and name not in targets:
                self.error(src, "DB282", f"{where}: document '{doc.get('code')}': customers: no field of "
                                         f"'{draft.name}' refers to '{name}'")

    def _sections(self, where: str, p: Layered, draft: EntityDraft) -> None:
        keys = set(draft.sections) if draft.sections_declared else {DEFAULT_SECTION}
        for key, src in p.items("sections"):
            if key not in keys:
                self.error(src, "DB282", f"{where}: '{key}' is not a section of '{draft.name}' "
                                         f"(sections: {', '.join(sorted(keys))})")

    # -- fee schemes ------------------------------------------------------------
    def _fee_scheme(self, code: str, f: Layered) -> None:
        where = f"fee scheme '{code}'"
        basis = f.get("basis")
        has_rate, tiers = f.get("rate") is not None, f.items("tiers")
        if basis == "fixed":
            if f.get("amount") is None:
                self.error(f.newest("basis", "amount"), "DB284", f"{where}: basis fixed needs amount:")
            if has_rate or tiers:
                self.error(f.newest("rate", "tiers", "basis"), "DB284",
                           f"{where}: basis fixed takes amount:, not rate: or tiers: (set them to null)")
        elif basis in ("annual_rate", "flat_rate"):
            if has_rate == bool(tiers):
                self.error(f.newest("tiers", "rate", "basis"), "DB284",
                           f"{where}: basis {basis} needs rate: or tiers:, exactly one of them "
                           f"(set the other to null)")
            if f.get("amount") is not None:
                self.error(f.newest("amount", "basis"), "DB284",
                           f"{where}: amount: is for basis fixed only; basis {basis} takes rate: or tiers:")
        self._range(f.get("rate"), f.src("rate"), f"{where}: rate", high=ONE)
        self._tiers(where, tiers)
        for key in ("amount", "minimum", "maximum"):
            self._range(f.get(key), f.src(key), f"{where}: {key}")
        self._order(f, "minimum", "maximum", where)
        rounding = f.get("rounding")
        if rounding is not None and rounding not in ROUNDINGS:
            self.error(f.src("rounding"), "DB285", f"{where}: rounding '{rounding}' is not one of "
                                                   f"{', '.join(sorted(ROUNDINGS))}")

    def _tiers(self, where: str, tiers) -> None:
        """Bands of the amount: each tier's ``below`` above the previous one
        (above 0 for the first), the last open-ended."""
        low = ZERO
        for i, (tier, src) in enumerate(tiers):
            self._range(tier.get("rate"), key_source(tier, "rate", src), f"{where}: tier rate", high=ONE)
            below, last = tier.get("below"), i == len(tiers) - 1
            if last and below is not None:
                self.error(src, "DB284", f"{where}: the last tier takes no below: (it covers every amount "
                                         f"from {low} up)")
            elif not last and below is None:
                self.error(src, "DB284", f"{where}: only the last tier may leave out below:")
            elif below is not None and below <= low:
                self.error(src, "DB284", f"{where}: tier below {below} is not above {low} "
                                         f"(tiers go in ascending order)")
            if below is not None and below > low:
                low = below

    # -- counter-guarantee kinds -------------------------------------------------
    def _counter_guarantee_kind(self, code: str, k: Layered) -> None:
        where = f"counter-guarantee kind '{code}'"
        self._range(k.get("default_discount"), k.src("default_discount"), f"{where}: default_discount", high=ONE)
        name = k.get("asset_codelist")
        codelist = self.m.codelists.get(name) if isinstance(name, str) else None
        if isinstance(name, str) and codelist is None:
            self.error(k.src("asset_codelist"), "DB287", f"{where}: asset_codelist '{name}' is not declared")
        discounts = k.get("discounts")
        if not isinstance(discounts, LineDict):
            return
        file = k.src("discounts").file
        codes = {i.get("code") for i, _ in codelist.items("items") if isinstance(i, LineDict)} if codelist else None
        if discounts and name is None:
            self.error(k.src("discounts"), "DB287", f"{where}: discounts by asset kind need asset_codelist: "
                                                    f"(the code list of the asset kinds)")
        for asset, value in discounts.items():
            src = Source(file, discounts.key_line(asset))
            if codes is not None and asset not in codes:
                self.error(src, "DB287", f"{where}: discounts: '{asset}' is not a code of '{name}'")
            self._range(value, src, f"{where}: discount of {asset}", high=ONE)

    # -- ledger kinds -----------------------------------------------------------
    def _ledger_kind(self, code: str, k: Layered) -> None:
        where = f"ledger kind '{code}'"
        effects = k.get("effects")
        if isinstance(effects, LineDict):
            file = k.src("effects").file
            for balance, sign in effects.items():
                src = Source(file, effects.key_line(balance))
                if balance not in LEDGER_BALANCES:
                    self.error(src, "DB286", f"{where}: '{balance}' is not a balance "
                                             f"({', '.join(LEDGER_BALANCES)})")
                if type(sign) is not int or sign not in (1, -1):
                    self.error(src, "DB286", f"{where}: the effect on {balance} is {sign!r}, not 1 or -1")
        not_above = k.get("not_above")
        if not_above is not None and not_above not in LEDGER_BALANCES:
            self.error(k.src("not_above"), "DB286", f"{where}: not_above '{not_above}' is not a balance "
                                                    f"({', '.join(LEDGER_BALANCES)})")

    # -- numbering ---------------------------------------------------------------
    def _numbering(self, entity: EntityDraft, name: str, f: Layered) -> None:
        problem = numbering_problem(f.get("numbering"))
        if problem:
            self.error(f.src("numbering"), "DB288", f"field '{name}' of '{entity.name}': numbering "
                                                    f"{f.get('numbering')!r} {problem}")


def numbering_problem(fmt: str) -> str | None:
    """Why ``fmt`` is not a numbering format, or None when it is: text with
    ``{year}``, ``{month}`` and exactly one ``{seq}`` (or ``{seq:0Nd}``, N 1..12)."""
    try:
        parts = list(string.Formatter().parse(fmt))
    except ValueError as exc:
        return f"is not a format: {exc} (write {{{{ and }}}} for braces)"
    seqs = 0
    for _, field_name, spec, conversion in parts:
        if field_name is None:
            continue
        if field_name not in NUMBERING_KEYS or conversion:
            return f"uses {{{field_name}{'!' + conversion if conversion else ''}}}; only {{year}}, {{month}} " \
                   f"and {{seq}} may be used"
        if field_name == "seq":
            seqs += 1
            if spec and not _seq_width(spec):
                return f"formats seq as '{spec}'; use {{seq}} or {{seq:0Nd}} with N from 1 to {MAX_SEQ_WIDTH}"
        elif spec:
            return f"formats {field_name} as '{spec}'; write {{{field_name}}} alone"
    if seqs != 1:
        return "needs {seq} (or {seq:05d}) exactly once" if seqs == 0 else "uses {seq} more than once"
    return None


def _seq_width(spec: str) -> bool:
    digits = spec[1:-1]
    return spec.startswith("0") and spec.endswith("d") and digits.isdigit() and 1 <= int(digits) <= MAX_SEQ_WIDTH


def check_business(merged: Merged) -> list[PackError]:
    return BusinessChecker(merged).run()


# -- building ----------------------------------------------------------------------
def build_business(merged: Merged) -> dict[str, dict]:
    """The Meta fields of the business, by name: ``Meta(..., **build_business(merged))``."""
    return {
        "products": {code: _product(code, p) for code, p in merged.products.items()},
        "fee_schemes": {code: _fee_scheme(code, f) for code, f in merged.fee_schemes.items()},
        "counter_guarantee_kinds": {code: _counter_guarantee_kind(code, k)
                                    for code, k in merged.counter_guarantee_kinds.items()},
        "ledger_kinds": {code: _ledger_kind(code, k) for code, k in merged.ledger_kinds.items()},
        "settings": {name: SettingMeta(name=name, value=plain(s.get("value")), label=_label(s.get("label")),
                                       source=s.at)
                     for name, s in merged.settings.items()},
    }


def _routes(value) -> tuple[str, ...]:
    """A product's ``workflow:``: one group or code, or a list of them."""
    if isinstance(value, str):
        return (value,)
    return tuple(v for v in value or () if isinstance(v, str))


def _product(code: str, p: Layered) -> ProductMeta:
    routes = _routes(p.get("workflow"))
    return ProductMeta(
        code=code, label=_label(p.get("label")), entity=p.get("entity"), category=p.get("category"),
        business_line=p.get("business_line", ""), workflow=routes[0] if routes else "",
        workflows=routes, fee_scheme=p.get("fee_scheme"),
        review_fee=p.get("review_fee"), deposit_rate=_dec(p.get("deposit_rate")),
        counter_guarantees=tuple(p.get("counter_guarantees") or ()), min_coverage=_dec(p.get("min_coverage")),
        scorecards=MappingProxyType(dict(p.get("scorecards") or {})),
        documents=tuple(DocumentRequirement(d.get("code"), bool(d.get("required", True)),
                                            d.get("stage", "application"), tuple(d.get("customers") or ()))
                        for d, _ in p.items("documents")),
        sections=tuple(p.get("sections") or ()), check_every_months=p.get("check_every_months"),
        amount_min=_dec(p.get("amount_min")), amount_max=_dec(p.get("amount_max")),
        term_max_months=p.get("term_max_months"), active=bool(p.get("active", True)), source=p.at)


def _fee_scheme(code: str, f: Layered) -> FeeSchemeMeta:
    tiers, low = [], ZERO
    for tier, _ in f.items("tiers"):
        below = _dec(tier.get("below"))
        tiers.append(FeeTier(min=low, below=below, rate=_dec(tier.get("rate"))))
        low = below
    return FeeSchemeMeta(
        code=code, label=_label(f.get("label")), basis=f.get("basis"), rate=_dec(f.get("rate")),
        tiers=tuple(tiers), tier_mode=f.get("tier_mode", "whole"), amount=_dec(f.get("amount")),
        minimum=_dec(f.get("minimum")), maximum=_dec(f.get("maximum")), frequency=f.get("frequency"),
        rounding=f.get("rounding", "ROUND_HALF_UP"), remainder=f.get("remainder", "last"), source=f.at)


def _counter_guarantee_kind(code: str, k: Layered) -> CounterGuaranteeKindMeta:
    return CounterGuaranteeKindMeta(
        code=code, label=_label(k.get("label")), default_discount=_dec(k.get("default_discount")),
        discounts=MappingProxyType({asset: _dec(v) for asset, v in (k.get("discounts") or {}).items()}),
        asset_codelist=k.get("asset_codelist"), source=k.at)


def _ledger_kind(code: str, k: Layered) -> LedgerKindMeta:
    return LedgerKindMeta(
        code=code, label=_label(k.get("label")), effects=MappingProxyType(dict(k.get("effects") or {})),
        allow_negative=bool(k.get("allow_negative", False)), statuses=tuple(k.get("statuses") or ()),
        not_above=k.get("not_above"), source=k.at)


def plain(value):
    """A setting's value without line numbers: mappings become dicts, lists
    tuples (so a frozen Meta holds no shared mutable list), numbers stay
    Decimal or int."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(plain(v) for v in value)
    if isinstance(value, float):
        return Decimal(str(value))
    return value


# -- products choose the project form's sections ----------------------------------------
def with_product_sections(meta):
    """A project form shows the sections its product lists: each section that not
    every product lists gets the condition ``product in [...]`` (joined with its
    own ``visible_if``), so the form follows the product chosen, live, and the
    record service ignores what a hidden section would send — the same rule as
    any conditional section. A product without ``sections`` shows them all."""
    import dataclasses
    by_entity: dict[str, list] = {}
    for product in meta.products.values():
        by_entity.setdefault(product.entity, []).append(product)
    entities = dict(meta.entities)
    for name, products in by_entity.items():
        em = entities.get(name)
        if em is None or not em.has_field("product") or not any(p.sections for p in products):
            continue
        sections = []
        for s in em.sections:
            showing = sorted(p.code for p in products if not p.sections or s.key in p.sections)
            if len(showing) == len(products):
                sections.append(s)
                continue
            rule = f"product in {showing!r}"
            sections.append(dataclasses.replace(s, visible_if=f"({s.visible_if}) and {rule}" if s.visible_if else rule))
        entities[name] = dataclasses.replace(em, sections=tuple(sections))
    return dataclasses.replace(meta, entities=entities)
