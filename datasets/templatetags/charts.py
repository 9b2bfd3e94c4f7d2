"""Server-side SVG charts: the coverage heatmaps, the difficulty bars and a funnel.

The tags compute geometry and colours in Python and hand plain numbers and strings to
small templates (``datasets/_svg_*.html``), where autoescaping covers every label (tag
values are user data). Presentation attributes only (``fill``, ``x``): no ``style``
attribute or inline script, so the strict CSP holds. Each chart has a ``<title>`` per
mark for the exact figure on hover; the pages put a table beside it, which is the
accessible version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django import template

register = template.Library()

LABEL_WIDTH = 190
CELL_WIDTH = 92
CELL_HEIGHT = 26
HEAD_HEIGHT = 24
HEATMAP_ROWS = 60
LABEL_CHARS = 28
TIMES = "\u00d7"  # the multiplication sign between crossed values

# Gap as a share of the target, light to dark; the last colour needs light text.
GAP_COLOURS = ("#dcefdc", "#fbe3c4", "#f6bf8a", "#ec8c5c", "#c8423a")
SHARE_COLOURS = ("#f1f1f1", "#dbe7f4", "#9dc1e4")
OVER_CEILING = "#e07b00"
DARK_TEXT, LIGHT_TEXT = "#1d1d1d", "#ffffff"
ORIGIN_COLOURS = (
    ("real", "Real", "#4a6fa5"),
    ("synthetic_approved", "Synthetic, approved", "#3f8f4a"),
    ("synthetic_pending", "Synthetic, pending", "#b3aca6"),
)


def _n(value: float) -> str:
    """A coordinate as SVG wants it. Strings, not floats: the template engine would run
    every number through locale formatting, which costs more than drawing the chart."""
    return f"{value:.1f}".removesuffix(".0")


def _short(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _row_label(labels: Sequence[tuple[str, str]]) -> str:
    return f" {TIMES} ".join(value or f"(no {dim})" for dim, value in labels)


def _gap_colour(gap: int, target: int) -> tuple[str, str]:
    if not gap:
        return GAP_COLOURS[0], DARK_TEXT
    ratio = gap / target if target else 1
    step = 1 + min(int(ratio * 4), 3) if ratio < 1 else 4
    return GAP_COLOURS[step], LIGHT_TEXT if step == 4 else DARK_TEXT


def _share_colour(share: float, ceiling: float, over: bool) -> tuple[str, str]:
    if over:
        return OVER_CEILING, DARK_TEXT
    if share <= 0:
        return SHARE_COLOURS[0], DARK_TEXT
    return SHARE_COLOURS[1 if share < ceiling / 2 else 2], DARK_TEXT


@dataclass(frozen=True)
class Mark:
    x: float
    y: float
    width: float
    height: float
    fill: str
    text: str
    text_fill: str
    title: str

    @property
    def svg(self) -> dict[str, str]:
        return {
            "x": _n(self.x),
            "y": _n(self.y),
            "width": _n(self.width),
            "height": _n(self.height),
            "text_x": _n(self.x + self.width - 6),
            "text_y": _n(self.y + self.height / 2 + 4),
        }


@register.inclusion_tag("datasets/_svg_heatmap.html")
def heatmap(coverage: Any, metric: str = "gap") -> dict:
    """The matrix as a heatmap of the gap (``metric="gap"``) or the synthetic share.

    ``coverage`` is a ``datasets.selectors.coverage.Coverage``. Rows without a target
    (untagged) and the unset-difficulty column are left out: they have no gap to colour.
    """
    difficulties = [d for d in coverage.difficulties if d]
    rows = [row for row in coverage.rows if not row.untagged]
    shown = rows[:HEATMAP_ROWS]
    ceiling = coverage.matrix.ceiling
    labels, marks, heads = [], [], []
    for col, difficulty in enumerate(difficulties):
        heads.append(
            {"x": _n(LABEL_WIDTH + col * CELL_WIDTH + CELL_WIDTH / 2), "text": difficulty.title()}
        )
    for r, row in enumerate(shown):
        y = HEAD_HEIGHT + r * CELL_HEIGHT
        name = _row_label(row.labels)
        labels.append({"y": _n(y + CELL_HEIGHT / 2 + 4), "text": _short(name), "title": name})
        for col, view in enumerate(c for c in row.cells if c.difficulty):
            cell = view.cell
            if metric == "gap":
                fill, ink = _gap_colour(cell.gap, cell.target)
                text = str(cell.gap) if cell.gap else "✓"
            else:
                fill, ink = _share_colour(cell.synthetic_share, ceiling, view.over_ceiling)
                text = f"{cell.synthetic_share:.0%}" + (" !" if view.over_ceiling else "")
            title = (
                f"{name} {TIMES} {view.difficulty}: gap {cell.gap} (target {cell.target}, approved "
                f"{cell.approved} = {cell.real} real + {cell.synthetic_approved} synthetic; "
                f"{cell.synthetic_pending} pending); synthetic share "
                f"{cell.synthetic_share:.0%} (ceiling {ceiling:.0%})"
                + ("; over the ceiling" if view.over_ceiling else "")
            )
            marks.append(
                Mark(
                    x=LABEL_WIDTH + col * CELL_WIDTH + 1,
                    y=y + 1,
                    width=CELL_WIDTH - 2,
                    height=CELL_HEIGHT - 2,
                    fill=fill,
                    text=text,
                    text_fill=ink,
                    title=title,
                )
            )
    caption = (
        "Gap per cell (target minus approved; ✓ = no gap)"
        if metric == "gap"
        else f"Synthetic share per cell (! = over the {ceiling:.0%} ceiling)"
    )
    return {
        "metric": metric,
        "caption": caption,
        "width": _n(LABEL_WIDTH + len(difficulties) * CELL_WIDTH),
        "height": _n(HEAD_HEIGHT + len(shown) * CELL_HEIGHT + 4),
        "heads": heads,
        "labels": labels,
        "marks": marks,
        "cut": len(rows) - len(shown),
        "shown": len(shown),
    }


BAR_AREA = 150
BAR_WIDTH = 22
GROUP_GAP = 26


@register.inclusion_tag("datasets/_svg_bars.html")
def difficulty_bars(totals: Sequence[Any]) -> dict:
    """Grouped bars: per difficulty, how many samples are real, synthetic approved, pending.

    ``totals`` are ``Totals`` rows (``difficulty``, ``real``, ``synthetic_approved``,
    ``synthetic_pending``).
    """
    top = max(
        [getattr(t, key) for t in totals for key, _, _ in ORIGIN_COLOURS] + [1],
    )
    group_width = len(ORIGIN_COLOURS) * BAR_WIDTH + GROUP_GAP
    bars, heads = [], []
    for g, total in enumerate(totals):
        x0 = 10 + g * group_width
        name = total.difficulty.title() if total.difficulty else "Unset"
        heads.append({"x": _n(x0 + len(ORIGIN_COLOURS) * BAR_WIDTH / 2), "text": name})
        for b, (key, label, colour) in enumerate(ORIGIN_COLOURS):
            value = getattr(total, key)
            height = BAR_AREA * value / top
            bars.append(
                {
                    "x": _n(x0 + b * BAR_WIDTH),
                    "y": _n(20 + BAR_AREA - height),
                    "width": _n(BAR_WIDTH - 3),
                    "height": _n(max(height, 0.5 if value else 0)),
                    "fill": colour,
                    "value": str(value),
                    "label_y": _n(20 + BAR_AREA - height - 4),
                    "text_x": _n(x0 + b * BAR_WIDTH + (BAR_WIDTH - 3) / 2),
                    "title": f"{name}: {value} {label.lower()}",
                }
            )
    legend = [
        {"x": _n(10 + i * 170), "text_x": _n(24 + i * 170), "label": label, "fill": colour}
        for i, (_, label, colour) in enumerate(ORIGIN_COLOURS)
    ]
    return {
        "width": _n(max(20 + len(totals) * group_width, 10 + len(legend) * 170)),
        "height": _n(20 + BAR_AREA + 46),
        "axis_y": _n(20 + BAR_AREA),
        "heads_y": _n(20 + BAR_AREA + 16),
        "legend_y": _n(20 + BAR_AREA + 30),
        "legend_text_y": _n(20 + BAR_AREA + 39),
        "bars": bars,
        "heads": heads,
        "legend": legend,
        "totals": totals,
    }


FUNNEL_WIDTH = 360
FUNNEL_LABEL = 170
FUNNEL_ROW = 26


@register.inclusion_tag("datasets/_svg_funnel.html")
def funnel(
    stages: Sequence[tuple[str, int]], caption: str = "How many items each stage kept"
) -> dict:
    """Horizontal bars for a batch's stages, e.g. ``[("Generated", 50), ("Format", 48), ...]``.

    Each bar's width is its count against the largest stage; the title names what the
    stage removed compared with the one before it.
    """
    stages = [(str(label), int(count)) for label, count in stages]
    top = max([count for _, count in stages] + [1])
    rows = []
    previous = None
    for i, (label, count) in enumerate(stages):
        width = FUNNEL_WIDTH * count / top
        removed = None if previous is None else previous - count
        title = f"{label}: {count}"
        if removed:
            title += f" ({removed} fewer than the stage before)"
        rows.append(
            {
                "label": label,
                "short": _short(label, 24),
                "count": count,
                "removed": removed,
                "y": _n(i * FUNNEL_ROW + 3),
                "text_y": _n(i * FUNNEL_ROW + FUNNEL_ROW / 2 + 4),
                "width": _n(max(width, 1 if count else 0)),
                "count_x": _n(FUNNEL_LABEL + width + 6),
                "title": title,
            }
        )
        previous = count
    return {
        "caption": caption,
        "rows": rows,
        "label_width": FUNNEL_LABEL,
        "bar_height": FUNNEL_ROW - 6,
        "width": FUNNEL_LABEL + FUNNEL_WIDTH + 60,
        "height": max(len(rows), 1) * FUNNEL_ROW,
    }
