"""Credit scorecards (资信评估) in metadata: their checks and their frozen form.

A scorecard is judged as a whole once every pack is laid over the earlier
ones: the weights must add up to 100, every indicator's bands must cover
all numbers exactly once (half-open ``min <= v < below``, open at both
ends), the grades must cover the 0–100 total exactly once, and a knock-out
may only cap at a grade the card has. Each problem is a pack error with the
file and line of the item that is wrong (codes DB260–DB268). Formulas and
knock-out conditions are compiled with the other expressions
(meta/expressions.py).
"""
from __future__ import annotations

from decimal import Decimal

from danbao.meta.errors import ItemChecker, PackError
from danbao.meta.model import (Band, ChoicePoints, GradeMeta, IndicatorMeta, KnockoutMeta, MissingRule, ScorecardMeta, Source)
from danbao.meta.build import decimal_or_none as _dec, label as _label
from danbao.meta.overlay import Layered, Merged, key_source, list_items
from danbao.meta.yamlio import LineDict

HUNDRED = Decimal(100)
NUMERIC_TYPES = ("integer", "decimal", "money", "rate")
#: The prefixes under which formulas see the latest statement and the one before it.
LATEST, PREVIOUS = "fs", "fs_prev"
#: Knock-out conditions see indicator values as ``ind__<code>``.
INDICATOR_PREFIX = "ind"


# -- checks ----------------------------------------------------------------------
class ScorecardChecker(ItemChecker):
    kind = "scorecards"

    def check(self, code: str, card: Layered) -> None:
        entity = card.get("entity")
        draft = self.m.entities.get(entity) if isinstance(entity, str) else None
        if isinstance(entity, str) and draft is None:
            self.error(card.src("entity"), "DB260", f"scorecard '{code}': entity '{entity}' is not declared")
        if draft is not None:
            self._statements(code, card, draft)
            self._result(code, card, draft)
        self._missing(code, card.get("missing"), card.src("missing"))
        grades = self._grades(code, card)
        self._indicators(code, card)
        seen = set()
        for item, src in card.items("knockouts"):
            kcode = item.get("code")
            if kcode in seen:
                self.error(src, "DB266", f"scorecard '{code}': knock-out '{kcode}' is declared twice")
            seen.add(kcode)
            cap = item.get("cap")
            if grades and isinstance(cap, str) and cap not in grades:
                self.error(key_source(item, "cap", src), "DB267",
                           f"scorecard '{code}': knock-out '{kcode}' caps at grade '{cap}', which the card does not "
                           f"have (grades: {', '.join(grades)})")

    def _statements(self, code: str, card: Layered, draft) -> None:
        spec = card.get("statements")
        if not isinstance(spec, LineDict):
            return
        src = card.src("statements")
        fname, period = spec.get("field"), spec.get("period")
        f = draft.fields.get(fname)
        if f is None or f.get("type") != "children":
            self.error(src, "DB268", f"scorecard '{code}': statements.field '{fname}' is not a children field "
                                     f"of '{draft.name}'")
            return
        child = self.m.entities.get(f.get("target"))
        pf = child.fields.get(period) if child is not None else None
        if child is not None and (pf is None or pf.get("type") != "date"):
            self.error(src, "DB268", f"scorecard '{code}': statements.period '{period}' is not a date field "
                                     f"of '{child.name}'")

    def _result(self, code: str, card: Layered, draft) -> None:
        spec = card.get("result")
        if not isinstance(spec, LineDict):
            return
        wanted = {"score": NUMERIC_TYPES, "grade": ("string", "enum"), "scored_on": ("date",)}
        kinds = {"score": "number", "grade": "string or enum", "scored_on": "date"}
        for key, types in wanted.items():
            name = spec.get(key)
            if name is None:
                continue
            f = draft.fields.get(name)
            if f is None or f.get("type") not in types:
                self.error(card.src("result"), "DB268",
                           f"scorecard '{code}': result.{key} '{name}' is not a {kinds[key]} field "
                           f"of '{draft.name}'")
            elif key == "grade" and f.get("type") == "enum":
                options = {o.get("value") for o in f.get("options") or () if isinstance(o, LineDict)}
                lacking = [g.get("grade") for g in card.get("grades") or ()
                           if isinstance(g, LineDict) and g.get("grade") not in options]
                if lacking:
                    self.error(card.src("result"), "DB268",
                               f"scorecard '{code}': result.grade '{name}' has no option for grade(s) "
                               f"{', '.join(map(str, lacking))}")

    def _missing(self, code: str, rule, src: Source) -> None:
        if isinstance(rule, LineDict) and rule.get("rule") == "points" and rule.get("points") is None:
            self.error(src, "DB265", f"scorecard '{code}': the missing-value rule 'points' needs points:")

    def _grades(self, code: str, card: Layered) -> list[str]:
        items = card.items("grades")
        names = []
        for item, src in items:
            if item.get("grade") in names:
                self.error(src, "DB266", f"scorecard '{code}': grade '{item.get('grade')}' is declared twice")
            names.append(item.get("grade"))
        ranges = [(_dec(i.get("min")), _dec(i.get("below")), src, i.get("grade")) for i, src in items]
        if ranges:
            self._cover(ranges, Decimal(0), HUNDRED, "DB264", "DB264", f"scorecard '{code}' grades",
                        card.src("grades"), noun="grade")
        return names

    def _indicators(self, code: str, card: Layered) -> None:
        groups_src = card.src("groups")
        file = groups_src.file
        total = Decimal(0)
        seen_groups, seen = set(), set()
        for group, gsrc in card.items("groups"):
            if group.get("key") in seen_groups:
                self.error(gsrc, "DB266", f"scorecard '{code}': group '{group.get('key')}' is declared twice")
            seen_groups.add(group.get("key"))
            for ind, src in list_items(group, "indicators", file):
                icode = ind.get("code")
                if icode in seen:
                    self.error(src, "DB266", f"scorecard '{code}': indicator '{icode}' is declared twice")
                seen.add(icode)
                total += _dec(ind.get("weight")) or 0
                self._indicator(code, ind, src)
        if card.get("groups") is not None and total != HUNDRED:
            self.error(groups_src, "DB261", f"scorecard '{code}': indicator weights add up to {total.normalize():f}, "
                                            f"not 100")

    def _indicator(self, code: str, ind: LineDict, src: Source) -> None:
        icode = ind.get("code")
        where = f"scorecard '{code}' indicator '{icode}'"
        has_formula, is_input = "formula" in ind, bool(ind.get("input"))
        bands, options = ind.get("bands"), ind.get("options")
        if has_formula == is_input:
            self.error(src, "DB265", f"{where}: declare either formula: or input: true")
        elif is_input and (bands is not None or options is None):
            self.error(src, "DB265", f"{where}: an input indicator takes options: with points (not bands:)")
        elif has_formula and (bands is None) == (options is None):
            self.error(src, "DB265", f"{where}: a formula needs bands: (numbers) or options: (text), one of them")
        self._missing(code, ind.get("missing"), key_source(ind, "missing", src))
        values = set()
        for opt, osrc in list_items(ind, "options", src.file):
            if opt.get("value") in values:
                self.error(osrc, "DB266", f"{where}: option '{opt.get('value')}' is declared twice")
            values.add(opt.get("value"))
        band_items = list_items(ind, "bands", src.file)
        if band_items:
            ranges = [(_dec(b.get("min")), _dec(b.get("below")), bsrc, None) for b, bsrc in band_items]
            self._cover(ranges, None, None, "DB262", "DB263", f"{where} bands", src, noun="band")

    def _cover(self, ranges, low, high, gap_code: str, overlap_code: str, what: str, src: Source, *,
               noun: str) -> None:
        """Check that ``ranges`` ((min, below, src, name)) cover [low, high] (None = all
        numbers) exactly once; report the first gap or overlap at the item concerned."""
        for lo, hi, isrc, _ in ranges:
            if lo is not None and hi is not None and lo >= hi:
                self.error(isrc, overlap_code, f"{what}: min {lo} is not below {hi}")
                return
        ordered = sorted(ranges, key=lambda r: (r[0] is not None, r[0] if r[0] is not None else 0))
        first_lo = ordered[0][0]
        if first_lo is not None and (low is None or first_lo > low):
            start = "every number" if low is None else f"{low}"
            self.error(ordered[0][2], gap_code, f"{what}: values below {first_lo} fall in no {noun} "
                                                f"(the lowest must start at {start}: leave out min)")
            return
        for (lo1, hi1, s1, _), (lo2, hi2, s2, _) in zip(ordered, ordered[1:]):
            if hi1 is None or lo2 is None or lo2 < hi1:
                self.error(s2, overlap_code, f"{what}: {_range(lo2, hi2)} overlaps {_range(lo1, hi1)}")
                return
            if lo2 > hi1:
                self.error(s2, gap_code, f"{what}: values from {hi1} up to {lo2} fall in no {noun}")
                return
        last_hi = ordered[-1][1]
        if last_hi is not None and (high is None or last_hi <= high):
            end = "above" if high is None else f"up to {high}"
            self.error(ordered[-1][2], gap_code, f"{what}: values from {last_hi} {end} fall in no {noun} "
                                                 f"(the highest must have no below:)")


def _range(lo, hi) -> str:
    return f"[{'-∞' if lo is None else lo}, {'∞' if hi is None else hi})"


def check_scorecards(merged: Merged) -> list[PackError]:
    return ScorecardChecker(merged).run()


# -- building ----------------------------------------------------------------------
def _missing_rule(node) -> MissingRule | None:
    if not isinstance(node, (LineDict, dict)):
        return None
    return MissingRule(node.get("rule"), _dec(node.get("points")))


def build_scorecards(merged: Merged) -> dict[str, ScorecardMeta]:
    return {code: _build(code, card) for code, card in merged.scorecards.items()}


def _build(code: str, card: Layered) -> ScorecardMeta:
    file = card.src("groups").file
    groups, indicators = [], []
    for group, gsrc in card.items("groups"):
        groups.append((group.get("key"), _label(group.get("label"))))
        for ind, src in list_items(group, "indicators", file):
            indicators.append(IndicatorMeta(
                code=ind.get("code"), label=_label(ind.get("label")), group=group.get("key"),
                weight=_dec(ind.get("weight")), formula=ind.get("formula"), input=bool(ind.get("input")),
                bands=tuple(Band(_dec(b.get("min")), _dec(b.get("below")), _dec(b.get("points")))
                            for b in sorted(ind.get("bands") or (), key=lambda b: (b.get("min") is not None,
                                                                                    _dec(b.get("min")) or 0))),
                options=tuple(ChoicePoints(o.get("value"), _label(o.get("label")), _dec(o.get("points")))
                              for o in ind.get("options") or ()),
                missing=_missing_rule(ind.get("missing")), help=_label(ind.get("help")), source=src))
    grades = sorted((GradeMeta(g.get("grade"), _label(g.get("label")), _dec(g.get("min")), _dec(g.get("below")))
                     for g in card.get("grades") or ()),
                    key=lambda g: -(g.low if g.low is not None else Decimal(-1)))
    statements = card.get("statements") or {}
    result = card.get("result") or {}
    return ScorecardMeta(
        code=code, label=_label(card.get("label")), entity=card.get("entity"),
        version=str(card.get("version", "1")), groups=tuple(groups), indicators=tuple(indicators),
        grades=tuple(grades), missing=_missing_rule(card.get("missing")),
        knockouts=tuple(KnockoutMeta(k.get("code"), _label(k.get("label")), k.get("when"), k.get("cap"), src)
                        for k, src in card.items("knockouts")),
        statements_field=statements.get("field"), statements_period=statements.get("period"),
        result_score=result.get("score"), result_grade=result.get("grade"), result_scored_on=result.get("scored_on"),
        active=bool(card.get("active", True)), source=card.at)
