"""Credit scoring (资信评估): a scorecard from metadata applied to one customer.

``Scorer`` holds one card's compiled formulas and scores plain values — no
database, so the benchmark and the property tests drive it directly.
``score_record`` reads a customer (and its latest two financial statements),
scores it and stores the result as history: a ``danbao_score`` row and one
``danbao_score_item`` per indicator with the value, points, weight and, for
an indicator that could not be computed, the reason and the missing-value
rule that scored it. The card's ``result`` fields on the customer get the
latest total, grade and date (audited like any change). Nothing is ever
overwritten. No Flask here.

Arithmetic: each indicator's points come from its bands or options; its
contribution is ``points × weight ÷ Σ weights`` (Σ = 100 unless an indicator
is excluded by the ``exclude`` rule), rounded half-up to 2 places; the total
is the sum of the rounded contributions, so the explanation adds up on screen.
"""
from __future__ import annotations

import ast
import bisect
import datetime as dt
import functools
import json
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Mapping

import sqlalchemy as sa

from danbao.engines.coerce import ID_LIMIT
from danbao.engines.records import Actor, NotFound, RecordService, ValidationFailed
from danbao.expr import ExprError, row_values
from danbao.expr.evaluate import plain_values
from danbao.expr.scope import RELATED_SEP
from danbao.meta.expressions import indicator_key, knockout_key
from danbao.meta.model import Band, IndicatorMeta, Label, Meta, MissingRule, ScorecardMeta
from danbao.meta.scorecards import INDICATOR_PREFIX, LATEST, PREVIOUS
from danbao.model.system import SCORE_ITEM_TABLE, SCORE_TABLE

CENT = Decimal("0.01")
HUNDRED = Decimal(100)


class ScoringError(Exception):
    """The card cannot give a score at all (e.g. every indicator excluded)."""

    def __init__(self, message: Label):
        super().__init__(message.en)
        self.message = message


@dataclass(frozen=True)
class ItemResult:
    indicator: IndicatorMeta
    value: object                    # Decimal, text or None
    computable: bool
    reason: Label | None
    missing_rule: str | None
    points: Decimal
    weighted: Decimal
    band: object = None              # the Band a computable number fell in


@dataclass(frozen=True)
class ScoreResult:
    card: ScorecardMeta
    items: tuple[ItemResult, ...]
    total: Decimal
    grade: str
    grade_before_cap: str
    knockouts: tuple                 # KnockoutMeta that held


class Scorer:
    """One scorecard, ready to score many customers with the same compiled formulas."""

    def __init__(self, meta: Meta, code: str):
        self.meta = meta
        self.card = meta.scorecards[code]
        self.formulas = {i.code: meta.expressions[indicator_key(code, i.code)]
                         for i in self.card.indicators if i.formula is not None}
        self.knockouts = [(k, meta.expressions[knockout_key(code, k.code)]) for k in self.card.knockouts]
        # bands as sorted lower bounds for bisect (the first band is open below)
        self._lows = {i.code: [b.low for b in i.bands[1:]] for i in self.card.indicators if i.bands}
        self._names = _name_labels(meta, self.card)

    # -- inputs ------------------------------------------------------------
    def check_inputs(self, inputs: Mapping[str, object]) -> dict[str, str]:
        """The analyst's choices, one per input indicator; every problem at once."""
        errors, clean = {}, {}
        for ind in self.card.indicators:
            if not ind.input:
                continue
            raw = inputs.get(ind.code) if isinstance(inputs, Mapping) else None
            if raw in (None, ""):
                errors[ind.code] = Label("请选择", "is required: choose one of the options")
            elif not isinstance(raw, str) or ind.option(raw) is None:
                allowed = ", ".join(o.value for o in ind.options)
                errors[ind.code] = Label(f"不是有效选项（可选：{allowed}）", f"is not one of the options ({allowed})")
            else:
                clean[ind.code] = raw
        if errors:
            raise ValidationFailed(errors)
        return clean

    # -- scoring -----------------------------------------------------------
    def score(self, values: Mapping[str, object], inputs: Mapping[str, str], *, today: dt.date,
              has_latest: bool = True, has_previous: bool = True) -> ScoreResult:
        """Score one customer from plain values (fields, ``fs__…``, ``fs_prev__…``)."""
        values = plain_values(values)        # checked once for all the card's formulas
        raw = []
        for ind in self.card.indicators:
            raw.append(self._indicator(ind, values, inputs, today, has_latest, has_previous))
        items = self._weigh(raw)
        total = sum((i.weighted for i in items), Decimal(0))
        before = self.card.grade_for(total)
        knock_values = dict(values)
        for item in items:
            knock_values[f"{INDICATOR_PREFIX}{RELATED_SEP}{item.indicator.code}"] = item.value
        knock_values = plain_values(knock_values)
        hit = tuple(k for k, expr in self.knockouts if _holds(expr, knock_values, today))
        grade = before
        for k in hit:
            if self.card.rank(k.cap) > self.card.rank(grade):
                grade = k.cap
        return ScoreResult(self.card, tuple(items), total, grade, before, hit)

    def _indicator(self, ind, values, inputs, today, has_latest, has_previous):
        """(indicator, value, the Band or ChoicePoints that scored it or None, reason) before weighting."""
        if ind.input:
            value = inputs.get(ind.code)
            choice = ind.option(value) if isinstance(value, str) else None
            if choice is None:
                return ind, value, None, Label("未录入", "not entered")
            return ind, value, choice, None
        expr = self.formulas[ind.code]
        try:
            value = expr.evaluate(values, today=today)
        except ExprError as exc:
            return ind, None, None, Label(f"无法计算：{exc.message}", f"cannot be computed: {exc.message}")
        if value is None:
            return ind, None, None, self._why(expr, values, has_latest, has_previous)
        if ind.options:
            choice = ind.option(value)
            if choice is None:
                return ind, value, None, Label(f"“{value}”不在评分选项中", f"'{value}' is not one of the scored options")
            return ind, value, choice, None
        band = ind.bands[bisect.bisect_right(self._lows[ind.code], value)]
        return ind, value, band, None

    def _why(self, expr, values, has_latest, has_previous) -> Label:
        names = expr.names
        if not has_latest and any(n.startswith(LATEST + RELATED_SEP) for n in names):
            return Label("无截至评分日的财务报表", "no financial statement on or before the scoring date")
        if not has_previous and any(n.startswith(PREVIOUS + RELATED_SEP) for n in names):
            return Label("缺少上一期财务报表", "no statement for the previous period")
        empty = sorted(n for n in names if values.get(n) is None)
        if empty:
            return Label("数据缺失：" + "、".join(self._names[n].zh for n in empty if n in self._names),
                         "missing: " + ", ".join(self._names[n].en for n in empty if n in self._names))
        denominators = _denominator_names(expr.source)
        zero = sorted(n for n in denominators if values.get(n) == 0) or sorted(denominators)
        if zero:
            return Label("分母为零：" + "、".join(self._names[n].zh for n in zero if n in self._names),
                         "division by zero: " + ", ".join(self._names[n].en for n in zero if n in self._names))
        return Label("无法计算（结果无定义）", "cannot be computed (undefined result)")

    def _weigh(self, raw) -> list[ItemResult]:
        """Apply the missing-value rules and weights."""
        scored = []
        for ind, value, hit, reason in raw:
            rule = None
            points = hit.points if hit is not None else None
            if points is None:
                rule = ind.missing or self.card.missing
                points = _missing_points(ind, rule)
            scored.append((ind, value, points, reason, rule, hit))
        weight_sum = sum((ind.weight for ind, _, points, _, _, _ in scored if points is not None), Decimal(0))
        if weight_sum == 0:
            raise ScoringError(Label("无法评分：没有可计算的指标", "Cannot score: no indicator could be computed"))
        items = []
        for ind, value, points, reason, rule, hit in scored:
            weighted = Decimal(0) if points is None else (points * ind.weight / weight_sum).quantize(
                CENT, rounding=ROUND_HALF_UP)
            items.append(ItemResult(ind, value, reason is None, reason, rule.rule if rule else None,
                                    points if points is not None else Decimal(0), weighted,
                                    hit if isinstance(hit, Band) else None))
        return items


def _missing_points(ind: IndicatorMeta, rule: MissingRule) -> Decimal | None:
    """Points for an indicator that could not be computed; None = excluded."""
    if rule.rule == "worst":
        return ind.lowest_points
    if rule.rule == "points":
        return rule.points
    return None


@functools.lru_cache(maxsize=4096)
def _denominator_names(source: str) -> frozenset[str]:
    """Names under the right-hand side of ``/``, ``//`` or ``%``: where a zero makes a formula undefined.
    (Parsing only; the source was checked when the pack loaded.)"""
    found = set()
    for node in ast.walk(ast.parse(source, mode="eval")):
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)):
            found |= {n.id for n in ast.walk(node.right) if isinstance(n, ast.Name)}
    return frozenset(found)


def _holds(expr, values, today) -> bool:
    try:
        return expr.holds(values, today=today)
    except ExprError:
        return False


def _name_labels(meta: Meta, card: ScorecardMeta) -> dict[str, Label]:
    """How formula names read in a reason: a field's label, or the statement's line."""
    em = meta.entity(card.entity)
    labels = {f.name: f.label for f in em.column_fields}
    if card.statements_field:
        child = meta.entity(em.field(card.statements_field).target)
        for f in child.column_fields:
            labels[f"{LATEST}{RELATED_SEP}{f.name}"] = Label(f"最新报表{f.label.zh}", f"latest {f.label.en}")
            labels[f"{PREVIOUS}{RELATED_SEP}{f.name}"] = Label(f"上期报表{f.label.zh}", f"previous {f.label.en}")
    return labels


# -- storing -----------------------------------------------------------------------
def cards_for(meta: Meta, entity: str) -> list[ScorecardMeta]:
    return [c for c in meta.scorecards.values() if c.entity == entity and c.active]


def card_for(meta: Meta, entity: str, product: str | None = None) -> ScorecardMeta | None:
    """The card a score of an ``entity`` record uses when none is named.

    A product's ``scorecards:`` (customer kind -> card) decides it: with a
    product context (the project being reviewed, or a product named by the
    caller), the first of its cards that scores this entity; without one, or
    when the product names no card for this entity, the entity's first
    active card (the pack's order). A customer may have projects of several
    products, so the context comes with the request, never from the
    customer alone. Products are metadata (``Meta.products``): no business
    engine is imported here."""
    cards = cards_for(meta, entity)
    chosen = meta.products.get(product or "")
    if chosen is not None:
        for code in chosen.scorecards.values():
            card = meta.scorecards.get(code)
            if card is not None and card in cards:
                return card
    return cards[0] if cards else None


def customer_values(session, models, meta: Meta, card: ScorecardMeta, record_id: int, as_of: dt.date):
    """(values, latest statement period or None, has previous) for one customer."""
    em = meta.entity(card.entity)
    table = models.table(card.entity)
    if type(record_id) is not int or not 0 < record_id <= ID_LIMIT:
        raise NotFound(card.entity, record_id)
    row = session.execute(sa.select(table).where(table.c.id == record_id)).mappings().first()
    if row is None:
        raise NotFound(card.entity, record_id)
    values = row_values(em, row)
    period, has_prev = None, False
    if card.statements_field:
        child_em = meta.entity(em.field(card.statements_field).target)
        child = models.table(child_em.name)
        pcol = child.c[child_em.field(card.statements_period).column_name]
        rows = session.execute(sa.select(child).where(child.c.parent_id == record_id, pcol <= as_of)
                               .order_by(pcol.desc(), child.c.id.desc()).limit(2)).mappings().all()
        if rows:
            values.update(row_values(child_em, rows[0], prefix=LATEST))
            period = rows[0][pcol.name]
        if len(rows) > 1:
            values.update(row_values(child_em, rows[1], prefix=PREVIOUS))
            has_prev = True
    return values, period, has_prev


def score_record(session, models, meta: Meta, code: str, record_id: int, *, inputs: Mapping[str, object],
                 actor: Actor, as_of: dt.date, now: dt.datetime | None = None) -> int:
    """Score one record with card ``code``, store the score and return its id (one transaction)."""
    now = now or dt.datetime.now()
    scorer = Scorer(meta, code)
    card = scorer.card
    clean = scorer.check_inputs(inputs)
    values, period, has_prev = customer_values(session, models, meta, card, record_id, as_of)
    result = scorer.score(values, clean, today=as_of, has_latest=period is not None, has_previous=has_prev)
    try:
        score_id = _insert(session, models, meta, result, record_id, as_of, period, actor, now)
        written = {name: value for name, value in ((card.result_score, result.total),
                                                   (card.result_grade, result.grade),
                                                   (card.result_scored_on, as_of)) if name}
        if written:
            RecordService(models, session, actor, clock=lambda: now).assign(card.entity, record_id, written)
        session.commit()
    except Exception:
        session.rollback()
        raise
    return score_id


def _insert(session, models, meta, result: ScoreResult, record_id, as_of, period, actor: Actor, now) -> int:
    card = result.card
    scores = models.system[SCORE_TABLE]
    knocked = [{"code": k.code, "label_zh": k.label.zh, "label_en": k.label.en, "cap": k.cap} for k in result.knockouts]
    score_id = session.execute(scores.insert().values(
        scorecard=card.code, scorecard_version=card.version[:32], label_zh=card.label.zh[:200],
        label_en=card.label.en[:200], entity=card.entity, record_id=record_id, as_of=as_of, total=result.total,
        grade=result.grade, grade_before_cap=result.grade_before_cap, knockouts=json.dumps(knocked, ensure_ascii=False),
        statement_period=period, scored_at=now, scored_by_id=actor.user_id, scored_by=actor.username[:256],
        meta_version=meta.version[:200]).returning(scores.c.id)).scalar_one()
    rows = []
    for position, item in enumerate(result.items):
        ind = item.indicator
        option = ind.option(item.value) if isinstance(item.value, str) and ind.options else None
        rows.append({
            "score_id": score_id, "position": position, "code": ind.code, "group_key": ind.group,
            "label_zh": ind.label.zh[:200], "label_en": ind.label.en[:200], "input": ind.input,
            "value": _text(item.value), "value_label_zh": option.label.zh[:200] if option else None,
            "value_label_en": option.label.en[:200] if option else None, "computable": item.computable,
            "band": _band_text(item.band),
            "reason_zh": item.reason.zh if item.reason else None, "reason_en": item.reason.en if item.reason else None,
            "missing_rule": item.missing_rule, "points": item.points, "weight": ind.weight, "weighted": item.weighted})
    session.execute(models.system[SCORE_ITEM_TABLE].insert(), rows)
    return score_id


def _band_text(band) -> str | None:
    """``40 ≤ x < 55``: the band, as a risk officer reads it."""
    if band is None:
        return None
    low = f"{band.low.normalize():f} ≤ " if band.low is not None else ""
    high = f" < {band.below.normalize():f}" if band.below is not None else ""
    return f"{low}x{high}"


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return f"{value.quantize(Decimal('0.0001'), rounding=ROUND_HALF_UP).normalize():f}"
    return str(value)


# -- reading -----------------------------------------------------------------------
def scores_of(session, models, entity: str, record_id: int, limit: int = 100) -> list:
    scores = models.system[SCORE_TABLE]
    return session.execute(sa.select(scores).where(scores.c.entity == entity, scores.c.record_id == record_id)
                           .order_by(scores.c.id.desc()).limit(limit)).mappings().all()


def load_score(session, models, score_id: int):
    """(score row, item rows in card order) or None."""
    scores, items = models.system[SCORE_TABLE], models.system[SCORE_ITEM_TABLE]
    score = session.execute(sa.select(scores).where(scores.c.id == score_id)).mappings().first()
    if score is None:
        return None
    rows = session.execute(sa.select(items).where(items.c.score_id == score_id)
                           .order_by(items.c.position)).mappings().all()
    return score, rows


def last_inputs(session, models, entity: str, record_id: int, card: str) -> dict[str, str]:
    """The analyst's choices at the last scoring with this card: the form's starting point."""
    scores, items = models.system[SCORE_TABLE], models.system[SCORE_ITEM_TABLE]
    last = session.execute(sa.select(scores.c.id).where(
        scores.c.entity == entity, scores.c.record_id == record_id, scores.c.scorecard == card)
        .order_by(scores.c.id.desc()).limit(1)).scalar()
    if last is None:
        return {}
    return {r.code: r.value for r in session.execute(sa.select(items.c.code, items.c.value).where(
        items.c.score_id == last, items.c.input.is_(True)))}


def score_to_dict(score, items, lang: str) -> dict:
    """A stored score as JSON-ready plain values, labels in ``lang`` (screens and API alike)."""
    en = lang == "en"
    pick = (lambda row, key: row[f"{key}_en"] if en else row[f"{key}_zh"])
    return {
        "id": score["id"], "scorecard": score["scorecard"], "scorecard_version": score["scorecard_version"],
        "label": pick(score, "label"), "entity": score["entity"], "record_id": score["record_id"],
        "as_of": score["as_of"].isoformat(), "total": f"{score['total']:.2f}", "grade": score["grade"],
        "grade_before_cap": score["grade_before_cap"],
        "knockouts": [{"code": k["code"], "label": k["label_en" if en else "label_zh"], "cap": k["cap"]}
                      for k in json.loads(score["knockouts"])],
        "statement_period": score["statement_period"].isoformat() if score["statement_period"] else None,
        "scored_at": score["scored_at"].isoformat(), "scored_by": score["scored_by"],
        "meta_version": score["meta_version"],
        "items": [{
            "code": i["code"], "group": i["group_key"], "label": pick(i, "label"), "input": i["input"],
            "value": i["value"], "value_label": pick(i, "value_label"), "band": i["band"], "computable": i["computable"],
            "reason": pick(i, "reason"), "missing_rule": i["missing_rule"], "points": f"{i['points']:.2f}",
            "weight": f"{i['weight']:.2f}", "weighted": f"{i['weighted']:.2f}"} for i in items],
    }
