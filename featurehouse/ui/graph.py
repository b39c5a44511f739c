"""Lineage as an SVG picture, in columns: what a view reads (dbt sources and models), the view, the
training sets recorded from its features and the model versions trained on them (coloured by their
deploy-check verdict), each box a link to its page. Drawn here, as text, so a page
needs no script and no library; every name is escaped, and the same names are listed beside the picture
for screen readers."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

BOX_W, BOX_H, GAP_Y, COL_GAP, PAD = 215, 34, 14, 60, 10


@dataclass(frozen=True)
class Node:
    label: str
    kind: str  # source | model | view | exposure | trainingset | passed | failed | unchecked (a model version)
    href: str | None = None


Edge = tuple[tuple[int, int], tuple[int, int]]  # (column, row) -> (column, row)


def flow_svg(columns: list[list[Node]], edges: list[Edge], title: str) -> str:
    """Columns of boxes, left to right, and the given edges between them (an edge may skip a column)."""
    columns = [c for c in columns]
    rows = max(1, *(len(c) for c in columns))
    height = PAD * 2 + rows * BOX_H + (rows - 1) * GAP_Y
    width = PAD * 2 + len(columns) * BOX_W + (len(columns) - 1) * COL_GAP
    centres: list[list[tuple[float, float]]] = []
    parts = []
    for c, nodes in enumerate(columns):
        x = PAD + c * (BOX_W + COL_GAP)
        column_h = len(nodes) * BOX_H + max(0, len(nodes) - 1) * GAP_Y
        top = (height - column_h) / 2
        centres.append([])
        for i, node in enumerate(nodes):
            y = top + i * (BOX_H + GAP_Y)
            centres[c].append((x, y + BOX_H / 2))
            # the whole label as the box's title (its tooltip and accessible name), the text cut to the box
            box = (f'<title>{escape(node.label)}</title>'
                   f'<rect class="n-{node.kind}" x="{x}" y="{y:.1f}" width="{BOX_W}" height="{BOX_H}" rx="4"/>'
                   f'<text x="{x + 8}" y="{y + BOX_H / 2 + 4:.1f}">{escape(_fit(node.label))}</text>')
            parts.append(f'<a href="{escape(node.href, {chr(34): "&quot;"})}">{box}</a>' if node.href else f"<g>{box}</g>")
    linked = any(node.href for nodes in columns for node in nodes)
    lines = []
    for (lc, li), (rc, ri) in edges:
        lx, ly = centres[lc][li]
        rx, ry = centres[rc][ri]
        lines.append(f'<path d="M{lx + BOX_W} {ly:.1f} C{lx + BOX_W + COL_GAP / 2} {ly:.1f} '
                     f'{rx - COL_GAP / 2} {ry:.1f} {rx} {ry:.1f}" marker-end="url(#arrow)"/>')
    return (f'<svg class="lineage" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            # with links inside, a group (an image may not hold controls); each box's link is named by its text
            f'width="{width}" height="{height}" role="{"group" if linked else "img"}" aria-labelledby="lineage-title">'
            f'<title id="lineage-title">{escape(title)}</title>'
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            'orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z"/></marker></defs>'
            f'<g class="edges">{"".join(lines)}</g><g class="nodes">{"".join(parts)}</g></svg>')


def _fit(label: str, most: int = 28) -> str:
    return label if len(label) <= most else label[: most - 1] + "…"


def dbt_node(unique_id: str) -> Node:
    """A dbt node id (`model.project.name`, `source.project.schema.table`) as a box: its short name, its kind."""
    parts = unique_id.split(".")
    kind = parts[0] if parts[0] in ("source", "model", "seed", "snapshot") else "model"
    label = ".".join(parts[2:]) if kind == "source" else parts[-1]
    return Node(f"{label} ({kind})", "source" if kind == "source" else "model")
