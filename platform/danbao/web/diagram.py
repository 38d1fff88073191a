"""A workflow drawn as SVG from its metadata (no JavaScript, no internet).

Steps are placed in columns by their distance from the start along the
transitions, ends in the last column; arrows carry the transition's
condition. The current step is filled, steps already passed are outlined,
so the same picture serves the workflow's page and a record's page.
"""
from __future__ import annotations

from html import escape

from danbao.meta.model import WorkflowMeta

COL_W, ROW_H, BOX_W, BOX_H, PAD = 190, 74, 150, 44, 20


def layout(wf: WorkflowMeta) -> dict[str, tuple[int, int]]:
    """step key -> (column, row)."""
    level = {wf.start: 0}
    queue = [wf.start]
    while queue:
        key = queue.pop(0)
        for t in wf.step(key).next:
            if t.to not in level and wf.has_step(t.to):
                level[t.to] = level[key] + 1
                queue.append(t.to)
    last = max([lv for k, lv in level.items() if not wf.step(k).is_end] + [0]) + 1
    for s in wf.steps:
        if s.is_end:
            level[s.key] = last
        level.setdefault(s.key, last)
    rows: dict[int, int] = {}
    out = {}
    for s in wf.steps:
        col = level[s.key]
        out[s.key] = (col, rows.get(col, 0))
        rows[col] = rows.get(col, 0) + 1
    return out


def _short(text: str, limit: int = 12) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def render_svg(wf: WorkflowMeta, lang: str, *, current: str | None = None, passed: set[str] | frozenset = frozenset(),
               finished: bool = False) -> str:
    pos = layout(wf)
    cols = max(c for c, _ in pos.values()) + 1
    rows = max(r for _, r in pos.values()) + 1
    width, height = PAD * 2 + cols * COL_W, PAD * 2 + rows * ROW_H + 24

    def box(key):
        col, row = pos[key]
        return PAD + col * COL_W, PAD + row * ROW_H

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="danbao-diagram" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(wf.label.get(lang))}">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#777"/></marker></defs>']
    for s in wf.steps:
        x, y = box(s.key)
        for t in s.next:
            if t.to not in pos:
                continue
            tx, ty = box(t.to)
            x1, y1, x2, y2 = x + BOX_W, y + BOX_H / 2, tx, ty + BOX_H / 2
            if tx <= x:      # a step in the same or an earlier column: go round below
                mid = max(y, ty) + BOX_H + 14
                path = f"M {x + BOX_W / 2} {y + BOX_H} C {x + BOX_W / 2} {mid}, {tx + BOX_W / 2} {mid}, {tx + BOX_W / 2} {ty + BOX_H}"
            else:
                path = f"M {x1} {y1} C {x1 + 30} {y1}, {x2 - 30} {y2}, {x2} {y2}"
            parts.append(f'<path d="{path}" fill="none" stroke="#777" stroke-width="1.4" marker-end="url(#arrow)"/>')
            if t.when:
                parts.append(f'<text x="{(x1 + x2) / 2:.0f}" y="{(y1 + y2) / 2 - 6:.0f}" font-size="10" fill="#555" '
                             f'text-anchor="middle"><title>{escape(t.when)}</title>{escape(_short(t.when, 22))}</text>')
    for s in wf.steps:
        x, y = box(s.key)
        is_current = s.key == current
        if is_current and not finished:
            fill, stroke, text = "#337ab7", "#23527c", "#fff"
        elif is_current and finished:
            fill, stroke, text = ("#5cb85c", "#3d8b3d", "#fff") if s.outcome == "approved" else ("#d9534f", "#b52b27", "#fff")
        elif s.key in passed:
            fill, stroke, text = "#eaf2fa", "#337ab7", "#23527c"
        else:
            fill, stroke, text = "#fff", "#999", "#333"
        radius = 20 if s.is_end else 4
        dash = ' stroke-dasharray="5 3"' if s.kind == "committee" else ""
        label = s.label.get(lang)
        parts.append(f'<g class="danbao-step{" current" if is_current else ""}" data-step="{escape(s.key)}">'
                     f'<title>{escape(label)}</title>'
                     f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="{radius}" fill="{fill}" '
                     f'stroke="{stroke}" stroke-width="{2 if is_current else 1.2}"{dash}/>'
                     f'<text x="{x + BOX_W / 2}" y="{y + BOX_H / 2 + 5}" font-size="13" fill="{text}" '
                     f'text-anchor="middle">{escape(_short(label))}</text></g>')
    note = {"zh": f"任一审批环节可否决 → {wf.step(wf.reject_to).label.zh}；虚线框为审保会",
            "en": f"Any approval step can reject → {wf.step(wf.reject_to).label.en}; dashed boxes are committees"}
    parts.append(f'<text x="{PAD}" y="{height - 8}" font-size="11" fill="#777">{escape(note["en" if lang == "en" else "zh"])}</text>')
    parts.append("</svg>")
    return "".join(parts)
