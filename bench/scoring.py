"""Credit scoring: compiled scorecard formulas against per-call simpleeval.

Builds a pack with a 30-indicator scorecard (24 numeric formulas over 20
statement-like fields with bands, 6 text indicators with options), generates
synthetic customers (a few empty fields and zero denominators among them, as
real data has), then times
  - engine: ``Scorer.score`` for every customer — the formulas compiled once
    when the pack loaded, bands, missing-value rule, weights, knock-outs;
  - baseline: ``simpleeval.simple_eval(formula, names=values)`` per indicator
    per customer (parsed on every call, no None rule: errors count as missing),
    with the same band lookup,
checks both give the same indicator values where the baseline could compute
one, and prints indicators evaluated per second and the ratio, from one run.

Run: .venv/bin/python bench/scoring.py [--customers 100000] [--baseline 10000]
Not a timed test: it prints figures, it asserts only that both paths agree.
"""
from __future__ import annotations

import argparse
import bisect
import datetime as dt
import random
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import simpleeval

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "platform"))

from danbao.engines.scoring import Scorer  # noqa: E402
from danbao.meta.loader import load_packs  # noqa: E402

FIELDS = [f"v{i:02d}" for i in range(1, 21)]
TEXTS = [f"t{i}" for i in range(1, 7)]
TODAY = dt.date(2026, 11, 29)


def formulas() -> list[str]:
    """24 numeric formulas shaped like financial ratios."""
    out = []
    for i in range(24):
        a, b, c = FIELDS[i % 20], FIELDS[(i + 3) % 20], FIELDS[(i + 7) % 20]
        shape = i % 6
        out.append([
            f"{a} / {b} * 100",
            f"({a} - {c}) / {b}",
            f"({a} + {c}) / {b} if {b} != 0 else None",
            f"coalesce({a}, 0) / {b}",
            f"({a} - {b}) / {b} * 100",
            f"min({a}, {c}) / max({b}, 1)",
        ][shape])
    return out


def write_pack(folder: Path) -> None:
    (folder / "pack.yaml").write_text('name: bench\nversion: "1"\nlabel: {zh: 基准, en: Bench}\nrequires: []\n')
    fields = "\n".join(f"  - {{name: {f}, type: money, label: {{zh: {f}, en: {f}}}}}" for f in FIELDS)
    texts = "\n".join(f"  - {{name: {t}, type: enum, label: {{zh: {t}, en: {t}}}, options: "
                      f"[{{value: a, label: {{zh: 甲, en: A}}}}, {{value: b, label: {{zh: 乙, en: B}}}}, "
                      f"{{value: c, label: {{zh: 丙, en: C}}}}]}}" for t in TEXTS)
    names = ", ".join(FIELDS + TEXTS)
    (folder / "customer.yaml").write_text(
        "entity: bench_customer\nlabel: {zh: 客户, en: Customer}\ntitle: v01\nfields:\n" + fields + "\n" + texts +
        f"\nsections:\n  - {{key: main, label: {{zh: 主, en: Main}}, fields: [{names}]}}\n")
    bands = ("[{below: 0, points: 0}, {min: 0, below: 1, points: 30}, {min: 1, below: 10, points: 60}, "
             "{min: 10, below: 50, points: 85}, {min: 50, points: 100}]")
    options = ("[{value: a, label: {zh: 甲, en: A}, points: 100}, {value: b, label: {zh: 乙, en: B}, points: 60}, "
               "{value: c, label: {zh: 丙, en: C}, points: 0}]")
    lines = []
    for i, f in enumerate(formulas()):
        lines.append(f"          - {{code: n{i:02d}, label: {{zh: 指标{i}, en: Ind {i}}}, weight: 3, "
                     f"formula: \"{f}\", bands: {bands}}}")
    for i, t in enumerate(TEXTS):
        weight = 5 if i < 4 else 4     # 24 × 3 + 4 × 5 + 2 × 4 = 100
        lines.append(f"          - {{code: x{i}, label: {{zh: 文{i}, en: Text {i}}}, weight: {weight}, "
                     f"formula: \"{t}\", options: {options}}}")
    (folder / "card.yaml").write_text("""scorecards:
  - code: bench
    label: {zh: 基准卡, en: Bench card}
    entity: bench_customer
    missing: {rule: worst}
    grades:
      - {grade: A, label: {zh: 甲, en: A}, min: 80}
      - {grade: B, label: {zh: 乙, en: B}, min: 60, below: 80}
      - {grade: C, label: {zh: 丙, en: C}, below: 60}
    knockouts:
      - {code: k, label: {zh: 否决, en: Knock}, when: "v01 < 0 and t1 == 'c'", cap: C}
    groups:
      - key: all
        label: {zh: 全部, en: All}
        indicators:
""" + "\n".join(lines) + "\n")


def customers(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        row = {}
        for f in FIELDS:
            roll = rng.random()
            if roll < 0.02:
                row[f] = None
            elif roll < 0.03:
                row[f] = Decimal(0)
            else:
                row[f] = Decimal(rng.randrange(-50_000, 10_000_000)) / 100
        for t in TEXTS:
            row[t] = rng.choice("abc")
        out.append(row)
    return out


def baseline(card, rows) -> tuple[list[list], float]:
    """Per call: parse and evaluate with simple_eval; band lookup as the engine does."""
    lows = {i.code: [b.low for b in i.bands[1:]] for i in card.indicators if i.bands}
    results = []
    start = time.perf_counter()
    for row in rows:
        values = []
        for ind in card.indicators:
            try:
                value = simpleeval.simple_eval(ind.formula, names=row, functions={
                    "coalesce": lambda *a: next((x for x in a if x is not None), None), "min": min, "max": max})
            except Exception:          # ZeroDivisionError, TypeError on None: no value
                value = None
            if value is not None and ind.bands:
                ind.bands[bisect.bisect_right(lows[ind.code], value)]
            elif value is not None:
                ind.option(value)
            values.append(value)
        results.append(values)
    return results, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=10_000, help="customers scored by the baseline")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_pack(Path(tmp))
        meta = load_packs([Path(tmp)])
    scorer = Scorer(meta, "bench")
    n_ind = len(scorer.card.indicators)
    rows = customers(args.customers)
    print(f"scorecard: {n_ind} indicators; customers: {len(rows):,}; baseline sample: {args.baseline:,}")

    start = time.perf_counter()
    results = [scorer.score(row, {}, today=TODAY) for row in rows]
    engine_s = time.perf_counter() - start
    engine_rate = len(rows) * n_ind / engine_s

    sample = rows[:args.baseline]
    base_values, base_s = baseline(scorer.card, sample)
    base_rate = len(sample) * n_ind / base_s

    mismatches = 0
    for result, values in zip(results, base_values):
        for item, value in zip(result.items, values):
            if value is None or not item.computable:
                continue
            if isinstance(value, Decimal):
                same = abs(item.value - value) <= Decimal("1e-8") * max(1, abs(value))
            else:
                same = item.value == value
            mismatches += not same
    missing = sum(not i.computable for r in results for i in r.items)
    print(f"engine   : {engine_s:8.2f} s  {engine_rate:12,.0f} indicators/s  "
          f"({missing:,} not computable, scored by the missing rule)")
    print(f"baseline : {base_s:8.2f} s  {base_rate:12,.0f} indicators/s  (simpleeval.simple_eval per call)")
    print(f"ratio    : {engine_rate / base_rate:.2f}x  (engine rate ÷ baseline rate, same process)")
    grades = {}
    for r in results:
        grades[r.grade] = grades.get(r.grade, 0) + 1
    print(f"grades   : {dict(sorted(grades.items()))}")
    if mismatches:
        raise SystemExit(f"{mismatches} indicator values differ between the engine and the baseline")
    print("agreement: every value the baseline computed equals the engine's")


if __name__ == "__main__":
    main()
