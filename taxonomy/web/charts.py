"""Geometry for server-side SVG plots (bars with intervals, heatmaps). Numbers in, shapes out; the
templates draw them with autoescaping, so names from the data never become markup."""
from __future__ import annotations

from collections.abc import Sequence

LABEL_WIDTH = 260
BAR_AREA = 360
ROW_HEIGHT = 20


def _short(text: str, limit: int = 38) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def share_bars(shares: Sequence, *, limit: int = 25) -> dict:
    """Horizontal bars of shares with their 95 % interval whiskers (objects with category/share/ci_low/ci_high)."""
    rows = list(shares)[:limit]
    scale_max = max([r.ci_high for r in rows] + [0.05])
    scale = BAR_AREA / scale_max
    bars = []
    for i, r in enumerate(rows):
        y = 20 + i * ROW_HEIGHT
        bars.append({
            "label": _short(r.category), "title": r.category, "y": y, "text_y": y + 13,
            "width": round(r.share * scale, 2), "lo_x": round(LABEL_WIDTH + r.ci_low * scale, 2),
            "hi_x": round(LABEL_WIDTH + r.ci_high * scale, 2), "mid_y": y + 8,
            "value": f"{r.share:.1%}", "value_x": round(LABEL_WIDTH + r.ci_high * scale + 4, 2),
        })
    ticks = []
    step = 0.1 if scale_max > 0.3 else 0.05 if scale_max > 0.1 else 0.01
    value = 0.0
    while value <= scale_max + 1e-9:
        ticks.append({"x": round(LABEL_WIDTH + value * scale, 2), "text": f"{value:.0%}"})
        value += step
    return {"width": LABEL_WIDTH + BAR_AREA + 70, "height": 30 + len(rows) * ROW_HEIGHT, "x0": LABEL_WIDTH,
            "bars": bars, "ticks": ticks, "axis_y": 24 + len(rows) * ROW_HEIGHT}


def heat_colour(share: float) -> str:
    """White to dark blue; shares above 50 % all get the darkest shade."""
    t = min(max(share / 0.5, 0.0), 1.0)
    r, g, b = (round(255 + (20 - 255) * t), round(255 + (70 - 255) * t), round(255 + (160 - 255) * t))
    return f"rgb({r},{g},{b})"


def heatmap_grid(grid, *, max_rows: int = 60, max_columns: int = 30) -> dict:
    """Cells of a groups x categories heatmap (core.signatures.Heatmap), largest categories first."""
    cell_w, cell_h, left, top = 34, 20, 230, 180
    columns = list(grid.categories)[:max_columns]
    rows = list(zip(grid.groups, grid.n_errors, grid.shares, strict=True))[:max_rows]
    cells = []
    for i, (group, n, shares) in enumerate(rows):
        for j, category in enumerate(columns):
            share = shares[j]
            cells.append({
                "x": left + j * cell_w, "y": top + i * cell_h, "fill": heat_colour(share),
                "title": f"{group} / {category}: {share:.1%} of {n} errors",
                "text": f"{share * 100:.0f}" if share >= 0.005 else "",
                "text_x": left + j * cell_w + cell_w / 2, "text_y": top + i * cell_h + 14,
                "dark": share > 0.25,
            })
    return {
        "width": left + len(columns) * cell_w + 10, "height": top + len(rows) * cell_h + 10,
        "cell_w": cell_w, "cell_h": cell_h,
        "columns": [{"label": _short(c, 30), "title": c, "x": left + j * cell_w + cell_w / 2, "y": top - 6}
                    for j, c in enumerate(columns)],
        "rows": [{"label": _short(f"{g} (n={n})", 34), "title": g, "y": top + i * cell_h + 14, "x": left - 6}
                 for i, (g, n, _) in enumerate(rows)],
        "cells": cells, "truncated": len(grid.groups) > max_rows or len(grid.categories) > max_columns,
    }
