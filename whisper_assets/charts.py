"""Charts for reports and the UI: matplotlib figures rendered to inline SVG (HTML pages) or PNG (Dagster
metadata, MLflow artifacts).

Figures are built with matplotlib's object API on the Agg canvas (no pyplot state), so assets on several
threads can draw at once.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

Series = Sequence[tuple[float, float]]  # (x, y) points
_SIZE = (6.4, 3.2)
_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")


def histogram(values: Sequence[float], title: str, xlabel: str, bins: int = 30) -> Figure:
    figure, axes = _figure(title)
    if len(values):
        axes.hist(values, bins=bins, color=_COLORS[0])
    axes.set_xlabel(xlabel)
    axes.set_ylabel("count")
    return figure


def bars(groups: Mapping[str, Mapping[str, float]], title: str, ylabel: str) -> Figure:
    """Grouped bars: one group per outer key, one bar per inner key (the same inner keys in every group)."""
    figure, axes = _figure(title)
    names = list(groups)
    series = list(dict.fromkeys(key for values in groups.values() for key in values))
    width = 0.8 / max(1, len(series))
    for i, key in enumerate(series):
        positions = np.arange(len(names)) + (i - (len(series) - 1) / 2) * width
        heights = [groups[name].get(key, 0.0) for name in names]
        axes.bar(positions, heights, width, label=key, color=_COLORS[i % len(_COLORS)])
    axes.set_xticks(range(len(names)), names, rotation=30 if len(names) > 6 else 0, ha="right")
    axes.set_ylabel(ylabel)
    if len(series) > 1:
        axes.legend()
    return figure


def lines(series: Mapping[str, Series], title: str, xlabel: str, ylabel: str) -> Figure:
    figure, axes = _figure(title)
    for i, (name, points) in enumerate(series.items()):
        if points:
            xs, ys = zip(*points, strict=True)
            axes.plot(xs, ys, marker="o" if len(points) < 20 else None, label=name, color=_COLORS[i % 6])
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if len(series) > 1:
        axes.legend()
    return figure


def heatmap(
    values: Sequence[Sequence[float | None]], rows: Sequence[str], columns: Sequence[str], title: str
) -> Figure:
    """A labelled matrix (None: no data); each cell shows its value as a percentage."""
    height = max(_SIZE[1], 0.35 * len(rows) + 1.2)
    figure, axes = _figure(title, (_SIZE[0], height))
    matrix = np.array([[np.nan if v is None else v for v in row] for row in values], dtype=float)
    image = axes.imshow(
        matrix, cmap="Reds", aspect="auto", vmin=0, vmax=max(1e-9, np.nanmax(matrix, initial=0))
    )
    axes.set_xticks(range(len(columns)), columns)
    axes.set_yticks(range(len(rows)), rows)
    for (r, c), value in np.ndenumerate(matrix):
        if not np.isnan(value):
            axes.text(c, r, f"{value:.0%}", ha="center", va="center", fontsize=8)
    figure.colorbar(image, ax=axes)
    return figure


def svg(figure: Figure) -> str:
    """The figure as an inline <svg> element."""
    buffer = io.StringIO()
    figure.savefig(
        buffer, format="svg", bbox_inches="tight", metadata={"Date": None}
    )  # same data, same bytes
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def markdown_image(figure: Figure, alt: str) -> str:
    """Markdown showing the figure inline (the way Dagster's UI renders a plot in asset metadata)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png(figure)).decode()})"


def _figure(title: str, size: tuple[float, float] = _SIZE) -> tuple[Figure, object]:
    figure = Figure(figsize=size, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    return figure, axes
