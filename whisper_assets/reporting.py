"""Small renderers for the summaries the UI and the CLI show."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence


def markdown_table(rows: Sequence[dict], columns: Sequence[str], limit: int = 20) -> str:
    """A Markdown table of the first `limit` rows (cells shortened, pipes escaped)."""
    if not rows:
        return "_no rows_"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows[:limit]:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    if len(rows) > limit:
        lines.append(f"\n_{len(rows) - limit} more rows not shown_")
    return "\n".join(lines)


def count_reasons(reasons: Iterable[str | None]) -> dict[str, int]:
    """How many times each rejection reason occurs, most frequent first."""
    return dict(Counter(r for r in reasons if r).most_common())


def _cell(value: object, limit: int = 60) -> str:
    if value is None:
        return ""
    text = f"{value:.2f}" if isinstance(value, float) else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
