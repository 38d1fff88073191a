"""The immutable Meta: what the runtime knows after packs are loaded and checked.

Everything below the loader (models, engines, web) reads these frozen
dataclasses and never YAML. One ``EntityMeta`` per entity, in the style of
Frappe's ``model/meta.py``: a plain description with a few lookups, no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Mapping

#: Field types whose values live in a column of the entity's own table.
COLUMN_TYPES = frozenset({
    "string", "text", "integer", "decimal", "money", "rate", "boolean",
    "date", "datetime", "enum", "code", "reference", "user",
})
#: Field types stored as ``<name>_id`` (an id of a record, or of a user).
ID_TYPES = frozenset({"reference", "user"})
#: Field types that live elsewhere (child table rows, attachment store).
RELATION_TYPES = frozenset({"children", "attachments"})
FIELD_TYPES = COLUMN_TYPES | RELATION_TYPES

#: Fixed scales for the money-like types (CNY has 2 places, rates 6).
MONEY_SCALE = 2
RATE_SCALE = 6
MONEY_PRECISION = 18
RATE_PRECISION = 12

#: Columns every entity table gets; metadata may not declare them.
SYSTEM_COLUMNS = ("id", "created_at", "created_by_id", "updated_at",
                  "updated_by_id", "version", "parent_id")


@dataclass(frozen=True)
class Label:
    """A text in Chinese and English. ``get`` falls back to Chinese."""
    zh: str
    en: str

    def get(self, lang: str | None) -> str:
        return self.en if (lang or "zh").startswith("en") else self.zh

    def __str__(self) -> str:  # pragma: no cover - convenience for logs
        return self.zh


@dataclass(frozen=True)
class CodedLabel(Label):
    """A message with the stable code of the rule that refused a value (ID003: a birth date)."""
    code: str = ""


@dataclass(frozen=True)
class Source:
    """Where a piece of metadata was declared, for error messages."""
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Option:
    value: str
    label: Label


@dataclass(frozen=True)
class CheckBy:
    """A check chosen by another field's value (an ID number checked by its ID type):
    ``checks`` pairs each value with a named check; other values get none."""
    field: str
    checks: tuple[tuple[str, str], ...]

    def check_for(self, value) -> str | None:
        return dict(self.checks).get(value)


@dataclass(frozen=True)
class FieldMeta:
    name: str
    type: str
    label: Label
    help: Label | None = None
    required: bool = False
    unique: bool = False
    index: bool = False
    min: Decimal | None = None
    max: Decimal | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    check: str | None = None            # named check: uscc | resident_id | passport | ...
    check_by: CheckBy | None = None     # named check chosen by another field's value
    normalize: tuple[str, ...] = ()     # halfwidth, strip_separators, upper, resident_id_15_to_18
    precision: int | None = None        # decimal only
    scale: int | None = None            # decimal only
    options: tuple[Option, ...] = ()    # enum
    codelist: str | None = None         # code
    target: str | None = None           # reference / children: entity name
    accept: tuple[str, ...] = ()        # attachments: image, document, audio, video
    max_size_mb: int | None = None      # attachments
    max_files: int | None = None        # attachments
    default: object = None
    readonly: bool = False
    renamed_from: str | None = None
    source: Source | None = None
    computed: str | None = None         # expression: calculated on save, shown read-only
    visible_if: str | None = None       # expression: shown (and accepted) only when true
    required_if: str | None = None      # expression: required when true
    readonly_if: str | None = None      # expression: input ignored when true
    numbering: str | None = None        # string: filled on create, e.g. DB-{year}-{seq:05d}
    roles: tuple[str, ...] = ()         # user: the user named must hold one of these roles
    sensitive: str | None = None        # string/text: id_number | phone | bank_account, masked for most roles

    @property
    def is_column(self) -> bool:
        return self.type in COLUMN_TYPES

    @property
    def column_name(self) -> str:
        """References and users are stored as ``<name>_id``; everything else as ``name``."""
        return f"{self.name}_id" if self.type in ID_TYPES else self.name

    @property
    def max_chars(self) -> int:
        """Column width for strings; a default keeps PostgreSQL VARCHARs bounded."""
        if self.type == "string":
            return self.max_length or 255
        if self.type in ("enum", "code"):
            return 64
        raise ValueError(f"{self.name} is not a string-like field")

    def option_label(self, value: str, lang: str | None) -> str:
        for opt in self.options:
            if opt.value == value:
                return opt.label.get(lang)
        return value


@dataclass(frozen=True)
class SectionMeta:
    key: str
    label: Label
    fields: tuple[str, ...]
    visible_if: str | None = None


@dataclass(frozen=True)
class ListMeta:
    columns: tuple[str, ...]
    filters: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    order_by: str = "-id"
    page_size: int = 20


@dataclass(frozen=True)
class IndexMeta:
    fields: tuple[str, ...]
    unique: bool = False

    @property
    def name(self) -> str:
        return "_".join(self.fields)


@dataclass(frozen=True)
class EntityMeta:
    name: str
    label: Label
    title: str
    fields: tuple[FieldMeta, ...]
    sections: tuple[SectionMeta, ...]
    list: ListMeta
    permissions: Mapping[str, tuple[str, ...]]   # read/write/delete -> role names
    indexes: tuple[IndexMeta, ...] = ()
    parent: str | None = None                    # set for child entities
    menu: str | None = None                      # menu key; None = not in menu
    icon: str = "fa-table"
    renamed_from: str | None = None
    source: Source | None = None
    overlays: tuple[Source, ...] = ()            # the extend: declarations applied, in order
    record_rules: "RecordRulesMeta | None" = None   # which records each role reads and writes (own/department/all)
    unmask: tuple[str, ...] | None = None        # roles that see sensitive fields in clear (None: the parent's)
    organisation: "OrganisationMeta | None" = None  # set on the one entity that is the department tree

    @property
    def table(self) -> str:
        return self.name

    @property
    def is_child(self) -> bool:
        return self.parent is not None

    def field(self, name: str) -> FieldMeta:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    def has_field(self, name: str) -> bool:
        return any(f.name == name for f in self.fields)

    @property
    def column_fields(self) -> tuple[FieldMeta, ...]:
        return tuple(f for f in self.fields if f.is_column)

    @property
    def children(self) -> tuple[FieldMeta, ...]:
        return tuple(f for f in self.fields if f.type == "children")

    @property
    def attachment_fields(self) -> tuple[FieldMeta, ...]:
        return tuple(f for f in self.fields if f.type == "attachments")


#: record-rule scopes, narrowest first: none < own < department < all
SCOPES = ("none", "own", "department", "all")


@dataclass(frozen=True)
class RecordRulesMeta:
    """Which records of an entity a role may read, write and delete (Odoo's record
    rules): ``own`` — records whose ``owners`` user fields (or ``created_by``)
    name the user; ``department`` — also records whose ``department`` fields
    name someone in the user's departments or below; ``all``. ``via``: a record
    is also in a scope when a record of another entity in that scope refers to
    it through a reference field (a customer through its projects). Roles not
    listed get ``none``; ``delete`` defaults to the ``write`` scope."""
    owners: tuple[str, ...]
    department: tuple[str, ...]
    via: tuple[tuple[str, str], ...]              # (entity, its reference field to this entity)
    roles: Mapping[str, Mapping[str, str]]        # role -> action -> scope
    source: Source | None = None

    def scope(self, role: str, action: str) -> str:
        grant = self.roles.get(role) or {}
        if action == "delete" and "delete" not in grant:
            action = "write"
        return grant.get(action, "none")


@dataclass(frozen=True)
class OrganisationMeta:
    """The department tree: the entity's ``parent`` reference (to itself), its
    ``head`` user field, and its ``members`` children whose ``member_user`` field
    names a member."""
    parent: str
    head: str
    members: str
    member_user: str


@dataclass(frozen=True)
class CodeItem:
    code: str
    label: Label
    parent: str | None = None


@dataclass(frozen=True)
class CodeListMeta:
    name: str
    label: Label
    items: tuple[CodeItem, ...]

    def label_of(self, code: str, lang: str | None) -> str:
        for item in self.items:
            if item.code == code:
                return item.label.get(lang)
        return code

    def has(self, code: str) -> bool:
        return any(item.code == code for item in self.items)


@dataclass(frozen=True)
class RoleMeta:
    name: str
    label: Label


@dataclass(frozen=True)
class MenuMeta:
    key: str
    label: Label
    icon: str = "fa-folder"
    order: int = 100


@dataclass(frozen=True)
class WarningRuleMeta:
    """A warning (预警) rule: a yes/no condition over one entity, checked by scans."""
    code: str
    label: Label
    entity: str
    when: str
    level: str                      # red | orange | yellow
    message: Label                  # Jinja templates over the record's fields
    notify_roles: tuple[str, ...] = ()
    notify_fields: tuple[str, ...] = ()   # ``user`` fields of the entity: the record's own people
    every_minutes: int = 1440
    active: bool = True
    source: Source | None = None


@dataclass(frozen=True)
class MissingRule:
    """How an indicator that cannot be computed is scored: ``worst`` (its lowest
    points), ``points`` (a fixed number) or ``exclude`` (its weight is shared
    among the computable indicators)."""
    rule: str
    points: Decimal | None = None


@dataclass(frozen=True)
class Band:
    """Values ``low <= v < below`` earn ``points``; None is an open end."""
    low: Decimal | None
    below: Decimal | None
    points: Decimal

    def holds(self, value: Decimal) -> bool:
        return (self.low is None or value >= self.low) and (self.below is None or value < self.below)


@dataclass(frozen=True)
class ChoicePoints:
    value: str
    label: Label
    points: Decimal


@dataclass(frozen=True)
class IndicatorMeta:
    """One scoring indicator: a formula over the customer's data (numbers map
    to points by ``bands``, text by ``options``) or a choice an analyst enters
    (``input``, points by ``options``)."""
    code: str
    label: Label
    group: str
    weight: Decimal
    formula: str | None = None
    input: bool = False
    bands: tuple[Band, ...] = ()
    options: tuple[ChoicePoints, ...] = ()
    missing: MissingRule | None = None      # overrides the card's rule
    help: Label | None = None
    source: Source | None = None

    @property
    def lowest_points(self) -> Decimal:
        return min(p.points for p in (self.bands or self.options))

    def option(self, value: str) -> ChoicePoints | None:
        return next((o for o in self.options if o.value == value), None)


@dataclass(frozen=True)
class GradeMeta:
    """Totals ``low <= total < below`` get this grade; grades are listed best first."""
    grade: str
    label: Label
    low: Decimal | None
    below: Decimal | None


@dataclass(frozen=True)
class KnockoutMeta:
    """When ``when`` holds, the grade is at most ``cap`` whatever the points say."""
    code: str
    label: Label
    when: str
    cap: str
    source: Source | None = None


@dataclass(frozen=True)
class ScorecardMeta:
    """A credit scorecard (资信评估): indicators in groups, weights summing to 100,
    grade cut-offs over the 0–100 total, knock-outs and the missing-value rule."""
    code: str
    label: Label
    entity: str
    version: str
    groups: tuple[tuple[str, Label], ...]
    indicators: tuple[IndicatorMeta, ...]
    grades: tuple[GradeMeta, ...]            # best first
    missing: MissingRule
    knockouts: tuple[KnockoutMeta, ...] = ()
    statements_field: str | None = None      # children field holding financial statements
    statements_period: str | None = None     # the statements' date field: latest = fs, the one before = fs_prev
    result_score: str | None = None          # entity fields the latest score is written to
    result_grade: str | None = None
    result_scored_on: str | None = None
    active: bool = True
    source: Source | None = None

    def grade_for(self, total: Decimal) -> str:
        for g in self.grades:
            if (g.low is None or total >= g.low) and (g.below is None or total < g.below):
                return g.grade
        return self.grades[-1].grade

    def rank(self, grade: str) -> int:
        """0 for the best grade; larger is worse."""
        return next(i for i, g in enumerate(self.grades) if g.grade == grade)

    def grade_label(self, grade: str) -> Label | None:
        return next((g.label for g in self.grades if g.grade == grade), None)

    def indicator(self, code: str) -> IndicatorMeta:
        return next(i for i in self.indicators if i.code == code)


@dataclass(frozen=True)
class Assignees:
    """Who: holders of ``roles``, or the users named in the record's ``user`` fields."""
    roles: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.roles or self.fields)


@dataclass(frozen=True)
class TransitionMeta:
    to: str
    when: str | None = None          # expression; the first transition whose condition holds is taken


@dataclass(frozen=True)
class CommitteeMeta:
    """审保会: ``quorum`` is the share of invited members who must vote; the
    project passes when agree votes reach ``pass_share`` of those present
    (defer votes count as present unless ``defer_counts_present`` is false);
    if it does not pass and defer votes reach ``defer_share`` of those
    present, it comes back to a later meeting, else it is rejected;
    ``veto``: the chairman's disagree rejects whatever the count."""
    pass_share: Decimal
    quorum: Decimal = Decimal(0)
    chairman: Assignees | None = None
    veto: bool = False
    secret: bool = False
    defer_share: Decimal = Decimal("0.5")
    defer_counts_present: bool = True


@dataclass(frozen=True)
class StepMeta:
    key: str
    label: Label
    kind: str = "approval"                 # approval | committee | end
    assignees: Assignees = Assignees()
    mode: str = "any"                      # any | all | ratio | sequence
    ratio: Decimal | None = None
    time_limit_hours: int | None = None
    on_timeout: str | None = None          # remind | escalate | approve | reject
    escalate_to: Assignees | None = None
    requires: str | None = None            # expression that must hold to approve out of the step
    requires_message: Label | None = None
    committee: CommitteeMeta | None = None
    outcome: str | None = None             # end steps: approved | rejected | withdrawn
    set: Mapping[str, object] = field(default_factory=dict)   # field values written on entering
    actions: tuple[str, ...] = ()          # engine actions run on entering (names.WORKFLOW_ACTIONS)
    next: tuple[TransitionMeta, ...] = ()
    #: separation of duties: who approved at these earlier steps of the instance is not asked here
    separate_from: tuple[str, ...] = ()
    #: recusal (回避): the users these user fields of the record name are not asked here (nor counted)
    recuse: tuple[str, ...] = ()
    #: recusal through related records: ``reference.children.user_field`` paths (e.g. the customer's
    #: related parties' connected staff member)
    recuse_paths: tuple[str, ...] = ()
    source: Source | None = None

    @property
    def is_end(self) -> bool:
        return self.kind == "end"


@dataclass(frozen=True)
class WorkflowMeta:
    """An approval workflow bound to an entity. ``digest`` identifies this
    version; records in flight keep the version they started with."""
    code: str
    label: Label
    entity: str
    version: str
    start: str
    reject_to: str
    steps: tuple[StepMeta, ...]
    withdraw_to: str | None = None
    group: str = ""                        # workflows of one group compete: the first by priority that applies
    applies_if: str | None = None
    priority: int = 100
    active: bool = True
    starters: Assignees = Assignees()
    on_start: Mapping[str, object] = field(default_factory=dict)
    #: a return to the applicant (补充资料) is allowed when set: the field values it writes
    on_return_to_applicant: Mapping[str, object] | None = None
    resume: str = "restart"                # after the applicant resubmits: restart | where_left
    digest: str = ""
    source: Source | None = None

    def step(self, key: str) -> StepMeta:
        for s in self.steps:
            if s.key == key:
                return s
        raise KeyError(f"workflow {self.code} has no step {key!r}")

    def has_step(self, key: str) -> bool:
        return any(s.key == key for s in self.steps)


@dataclass(frozen=True)
class PackInfo:
    name: str
    version: str
    path: str
    requires: tuple[str, ...] = ()
    label: Label | None = None


@dataclass(frozen=True)
class Meta:
    """Everything the loaded packs declare, frozen.

    ``version`` names the packs and a content hash, and is written into every
    audit row so one can tell which rules a change ran under.
    """
    packs: tuple[PackInfo, ...]
    entities: Mapping[str, EntityMeta]
    codelists: Mapping[str, CodeListMeta]
    roles: Mapping[str, RoleMeta]
    menus: Mapping[str, MenuMeta]
    digest: str
    warnings: Mapping[str, WarningRuleMeta] = field(default_factory=dict)
    scorecards: Mapping[str, ScorecardMeta] = field(default_factory=dict)
    workflows: Mapping[str, WorkflowMeta] = field(default_factory=dict)
    products: Mapping[str, "ProductMeta"] = field(default_factory=dict)
    fee_schemes: Mapping[str, "FeeSchemeMeta"] = field(default_factory=dict)
    counter_guarantee_kinds: Mapping[str, "CounterGuaranteeKindMeta"] = field(default_factory=dict)
    ledger_kinds: Mapping[str, "LedgerKindMeta"] = field(default_factory=dict)
    settings: Mapping[str, "SettingMeta"] = field(default_factory=dict)
    #: stage controls by entity name (meta/controls.py)
    controls: Mapping[str, "StageControlMeta"] = field(default_factory=dict)
    #: compiled expressions by ``entity.field.kind`` (see meta/expressions.py)
    expressions: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self):
        for attr in ("entities", "codelists", "roles", "menus", "warnings", "scorecards", "workflows",
                     "products", "fee_schemes", "counter_guarantee_kinds", "ledger_kinds", "settings",
                     "controls", "expressions"):
            value = getattr(self, attr)
            if not isinstance(value, MappingProxyType):
                object.__setattr__(self, attr, MappingProxyType(dict(value)))

    @property
    def version(self) -> str:
        names = "+".join(f"{p.name}@{p.version}" for p in self.packs)
        return f"{names}#{self.digest[:12]}"

    def setting(self, name: str, default=None):
        """A company setting's value (see ``settings:`` in the packs), or ``default``."""
        item = self.settings.get(name)
        return default if item is None else item.value

    def expression(self, entity: str, where: str, kind: str):
        """The compiled expression declared on a field (or ``section:<key>``), or None."""
        return self.expressions.get(f"{entity}.{where}.{kind}")

    def entity(self, name: str) -> EntityMeta:
        try:
            return self.entities[name]
        except KeyError:
            raise KeyError(f"unknown entity {name!r}") from None


# -- stage controls (meta/controls.py) ----------------------------------------------
@dataclass(frozen=True)
class ChangeGrant:
    """Fields (child collections, or ``rows.field`` for one field of existing rows) a
    stage lets people change: by ``roles``
    (any role with write permission when empty), while one of ``steps`` is the
    record's current workflow step (any time when empty)."""
    fields: tuple[str, ...]
    roles: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()


@dataclass(frozen=True)
class StageRule:
    statuses: tuple[str, ...]
    grants: tuple[ChangeGrant, ...] | None      # None: ``change: all``
    roles: tuple[str, ...] = ()                 # with ``change: all``: only these roles (empty: any writer)


@dataclass(frozen=True)
class StageControlMeta:
    """What people may change in each status of an entity (see meta/controls.py)."""
    entity: str
    field: str
    label: Label | None = None
    create_in: tuple[str, ...] = ()
    import_roles: tuple[str, ...] = ()
    delete_in: tuple[str, ...] = ()
    stages: tuple[StageRule, ...] = ()
    source: Source | None = None

    def stage(self, status) -> StageRule | None:
        """The stage a status belongs to; None locks everything."""
        for rule in self.stages:
            if status in rule.statuses:
                return rule
        return None


# -- the guarantee business (products, fees, counter-guarantees, ledger, settings) --
@dataclass(frozen=True)
class FeeTier:
    """One band of a tiered fee: amounts ``>= min`` and ``< below`` (None: no upper end) pay ``rate``."""
    min: Decimal
    below: Decimal | None
    rate: Decimal


@dataclass(frozen=True)
class FeeSchemeMeta:
    """A fee scheme (收费方案), in the shape of Fineract's charges.

    ``basis``: ``annual_rate`` (rate × amount × months ÷ 12), ``flat_rate``
    (rate × amount, once for the whole term) or ``fixed`` (``amount``).
    ``tiers`` replace ``rate`` by bands of the amount; ``tier_mode`` ``whole``
    charges the whole amount at its band's rate, ``progressive`` each slice at
    its own. The total is rounded to cents by ``rounding`` (a ``decimal``
    rounding name), then raised to ``minimum`` / lowered to ``maximum``; the
    instalments (``once``/``monthly``/``quarterly``/``yearly``) are shares of
    it by months covered, each rounded the same way, the cents left over
    going to the ``remainder`` instalment (``last`` or ``first``), so they sum
    to the total exactly.
    """
    code: str
    label: Label
    basis: str = "annual_rate"
    rate: Decimal | None = None
    tiers: tuple[FeeTier, ...] = ()
    tier_mode: str = "whole"
    amount: Decimal | None = None
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    frequency: str = "once"
    rounding: str = "ROUND_HALF_UP"
    remainder: str = "last"
    source: Source | None = None


@dataclass(frozen=True)
class DocumentRequirement:
    """A document a product asks for (a ``code`` of the ``document_kind`` code list);
    ``customers`` limits it to projects whose customer is one of these entities
    (a business licence from a company, not from a person)."""
    code: str
    required: bool = True
    stage: str = "application"        # application | contract | release
    customers: tuple[str, ...] = ()

    def applies_to(self, customer_entity: str | None) -> bool:
        """Asked of a project with this customer (any, while none is chosen)."""
        return not self.customers or customer_entity is None or customer_entity in self.customers


@dataclass(frozen=True)
class ProductMeta:
    """A guarantee product (担保产品): ties a project to its workflow group,
    fee schemes, allowed counter-guarantee kinds, scorecards per customer kind,
    required documents and form sections. A new product is a YAML item."""
    code: str
    label: Label
    entity: str                                   # the project entity
    category: str                                 # financing | non_financing (regulatory returns)
    business_line: str = ""                       # loan | bond | bid | performance | litigation | other
    workflow: str = ""                            # a workflow group (or code) the project's approval uses
    #: every route the product names (groups or codes); ``workflow`` is the first of them
    workflows: tuple[str, ...] = ()
    fee_scheme: str = ""                          # the guarantee fee
    review_fee: str | None = None                 # 评审费 scheme
    deposit_rate: Decimal | None = None           # 保证金 share of the amount
    counter_guarantees: tuple[str, ...] = ()      # allowed counter-guarantee kind codes
    min_coverage: Decimal | None = None           # Σ value × discount ÷ amount must reach this
    scorecards: Mapping[str, str] = field(default_factory=dict)   # customer kind -> scorecard code
    documents: tuple[DocumentRequirement, ...] = ()
    sections: tuple[str, ...] = ()                # the project form's sections shown (empty: all)
    check_every_months: int | None = None         # 保后检查 cycle
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    term_max_months: int | None = None
    active: bool = True
    source: Source | None = None


@dataclass(frozen=True)
class CounterGuaranteeKindMeta:
    """A counter-guarantee kind (反担保方式): 抵押, 质押, 保证, 信用, 留置, 定金 …
    ``discounts`` by asset kind (a code of ``asset_codelist``), else ``default_discount``."""
    code: str
    label: Label
    default_discount: Decimal
    discounts: Mapping[str, Decimal] = field(default_factory=dict)
    asset_codelist: str | None = None
    source: Source | None = None

    def discount(self, asset_kind: str | None) -> Decimal:
        return self.discounts.get(asset_kind or "", self.default_discount)


#: the balances a ledger entry can move; every balance is the sum of confirmed entries' effects
LEDGER_BALANCES = ("review_fee", "guarantee_fee", "deposit_held", "loan_outstanding", "guarantee_outstanding",
                   "compensation_paid", "recovered", "written_off")


@dataclass(frozen=True)
class LedgerKindMeta:
    """A kind of ledger entry (台账): which balances it moves (+1/-1 × amount),
    where it may be booked and what it may not exceed."""
    code: str
    label: Label
    effects: Mapping[str, int]                    # balance -> +1 | -1
    allow_negative: bool = False                  # amounts must be > 0 unless this is set
    statuses: tuple[str, ...] = ()                # project statuses it may be booked in (empty: any open one)
    not_above: str | None = None                  # a balance the amount may not exceed (refund ≤ deposit held)
    source: Source | None = None


@dataclass(frozen=True)
class SettingMeta:
    """A company setting (net assets, regulatory limits, which entity is the project …)."""
    name: str
    value: object
    label: Label | None = None
    source: Source | None = None
