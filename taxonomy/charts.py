"""Geometry for server-side SVG plots (bars with intervals, heatmaps, reliability diagrams, learning
curves). Numbers in, shapes out; the templates draw them with autoescaping, so names from the data
never become markup."""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from taxonomy.core.signatures import Heatmap

LABEL_WIDTH = 260
BAR_AREA = 360
ROW_HEIGHT = 20


def _short(text: str, limit: int = 38) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def share_bars(shares: Sequence[Any], *, limit: int = 25) -> dict[str, Any]:
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


# Column labels are drawn rotated up and to the right; the drawing is made big enough to hold the
# longest one (at about CHAR_WIDTH px per character of the 11 px font), so none is cut at its edge.
COLUMN_LABEL_ANGLE = 55
CHAR_WIDTH = 6.6


def heatmap_grid(grid: Heatmap, *, max_rows: int = 60, max_columns: int = 30) -> dict[str, Any]:
    """Cells of a groups x categories heatmap (core.signatures.Heatmap), largest categories first."""
    cell_w, cell_h, left = 34, 20, 230
    columns = list(grid.categories)[:max_columns]
    labels = [_short(c, 32) for c in columns]
    longest = max((len(label) for label in labels), default=0) * CHAR_WIDTH
    rise, run = math.sin(math.radians(COLUMN_LABEL_ANGLE)), math.cos(math.radians(COLUMN_LABEL_ANGLE))
    top = round(longest * rise) + 16
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
    label_ends = [left + j * cell_w + cell_w / 2 + len(label) * CHAR_WIDTH * run + 4
                  for j, label in enumerate(labels)]
    return {
        "width": round(max([left + len(columns) * cell_w + 10, *label_ends])),
        "height": top + len(rows) * cell_h + 10,
        "cell_w": cell_w, "cell_h": cell_h, "angle": -COLUMN_LABEL_ANGLE,
        "columns": [{"label": label, "title": c, "x": left + j * cell_w + cell_w / 2, "y": top - 6}
                    for j, (c, label) in enumerate(zip(columns, labels, strict=True))],
        "rows": [{"label": _short(f"{g} (n={n})", 34), "title": g, "y": top + i * cell_h + 14, "x": left - 6}
                 for i, (g, n, _) in enumerate(rows)],
        "cells": cells, "truncated": len(grid.groups) > max_rows or len(grid.categories) > max_columns,
    }


CURVE_WIDTH, CURVE_HEIGHT, CURVE_MARGIN = 640, 360, 56


def learning_curve(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Geometry of a learning curve: kappa (with its interval) against n gold labels on a log2 axis
    (0 drawn at the left edge); one position per point, ticks on both axes."""
    xs = [i for i, _ in enumerate(points)]  # points are 0 then doubling: evenly spaced on a log axis
    span_x = max(len(xs) - 1, 1)
    lows = [p["ci95"][0] for p in points if p.get("ci95")] + [p["kappa"] for p in points if p["kappa"] is not None]
    highs = [p["ci95"][1] for p in points if p.get("ci95")] + [p["kappa"] for p in points if p["kappa"] is not None]
    y_min: float = min(lows + [0.0])
    y_max: float = max(highs + [0.1])
    inner_w, inner_h = CURVE_WIDTH - 2 * CURVE_MARGIN, CURVE_HEIGHT - 2 * CURVE_MARGIN

    def x(i: int) -> float:
        return round(CURVE_MARGIN + inner_w * i / span_x, 2)

    def y(v: float) -> float:
        return round(CURVE_MARGIN + inner_h * (y_max - v) / ((y_max - y_min) or 1.0), 2)

    marks = [{"x": x(i), "y": y(p["kappa"]), "lo": y(p["ci95"][0]) if p.get("ci95") else None,
              "hi": y(p["ci95"][1]) if p.get("ci95") else None, "n": p["n_gold"], "kappa": p["kappa"]}
             for i, p in zip(xs, points) if p["kappa"] is not None]
    y_ticks = [{"y": y(v), "text": f"{v:.1f}"} for v in _ticks(y_min, y_max)]
    return {"width": CURVE_WIDTH, "height": CURVE_HEIGHT, "marks": marks, "y_ticks": y_ticks,
            "x0": CURVE_MARGIN, "x1": CURVE_WIDTH - CURVE_MARGIN, "y0": CURVE_HEIGHT - CURVE_MARGIN,
            "y1": CURVE_MARGIN, "line": " ".join(f"{m['x']},{m['y']}" for m in marks)}


def _ticks(low: float, high: float) -> list[float]:
    step = 0.1 if high - low <= 1 else 0.2
    start = step * (low // step)
    values = (round(start + k * step, 6) for k in range(int((high - start) / step) + 2))
    return [v for v in values if low - 1e-9 <= v <= high + 1e-9]


def learning_curve_png(points: Sequence[dict[str, Any]], path: Path, *, title: str) -> None:
    """The learning curve as a PNG file (Pillow): kappa with 95% interval whiskers against n gold labels."""
    from PIL import Image, ImageDraw

    geometry = learning_curve(points)
    image = Image.new("RGB", (geometry["width"], geometry["height"]), "white")
    draw = ImageDraw.Draw(image)
    x0, x1, y0, y1 = geometry["x0"], geometry["x1"], geometry["y0"], geometry["y1"]
    draw.line([(x0, y0), (x1, y0)], fill="black")
    draw.line([(x0, y0), (x0, y1)], fill="black")
    for tick in geometry["y_ticks"]:
        draw.line([(x0 - 4, tick["y"]), (x0, tick["y"])], fill="black")
        draw.text((x0 - 30, tick["y"] - 6), tick["text"], fill="black")
    marks = geometry["marks"]
    if len(marks) > 1:
        draw.line([(m["x"], m["y"]) for m in marks], fill=(60, 111, 176), width=2)
    for m in marks:
        if m["lo"] is not None:
            draw.line([(m["x"], m["lo"]), (m["x"], m["hi"])], fill=(120, 120, 120), width=1)
        draw.ellipse([(m["x"] - 3, m["y"] - 3), (m["x"] + 3, m["y"] + 3)], fill=(60, 111, 176))
        draw.text((m["x"] - 8, y0 + 6), str(m["n"]), fill="black")
    draw.text((x0, 12), title, fill="black")
    draw.text(((x0 + x1) // 2 - 60, y0 + 24), "gold labels learned from", fill="black")
    draw.text((6, y1 - 20), "Cohen's kappa with gold", fill="black")
    image.save(path, format="PNG")


def reliability_chart(bins: Sequence[dict[str, Any]], *, size: int = 240) -> dict[str, Any] | None:
    """Geometry of a reliability diagram: per confidence bin with items, a bar of its accuracy over the
    bin's span and a dot at its mean confidence; None when no item has a confidence."""
    x0, y_top = 44, 10
    y0 = y_top + size
    filled = [b for b in bins if b.get("n")]
    if not filled:
        return None
    bars = []
    for b in filled:
        low, high = b["low"], b["high"]
        accuracy, confidence = b["accuracy"] or 0.0, b["mean_confidence"] or 0.0
        x, width = x0 + low * size, (high - low) * size
        bars.append({**b, "x": round(x + 1, 1), "width": round(width - 2, 1),
                     "y": round(y0 - accuracy * size, 1), "height": round(accuracy * size, 1),
                     "cx": round(x0 + confidence * size, 1), "cy": round(y0 - accuracy * size, 1),
                     # n inside the foot of a bar tall enough to hold it, else just above the bar
                     "label_x": round(x + width / 2, 1), "label_inside": accuracy * size >= 18,
                     "label_y": round(y0 - 5 if accuracy * size >= 18 else y0 - accuracy * size - 4, 1)})
    ticks = [{"x": round(x0 + v * size, 1), "y": round(y0 - v * size, 1), "text": f"{v:.0%}"}
             for v in (0, 0.25, 0.5, 0.75, 1)]
    return {"width": x0 + size + 16, "height": y0 + 34, "size": size, "x0": x0, "y0": y0, "y_top": y_top,
            "x_right": x0 + size, "x_mid": x0 + size // 2, "y_mid": y_top + size // 2, "bars": bars,
            "ticks": ticks}
