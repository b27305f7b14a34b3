"""Small renderers for the summaries the UI and the CLI show: Markdown tables and self-contained HTML pages."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Sequence

_PAGE_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; } td, th { border: 1px solid #ddd; padding: 3px 8px; }
th { background: #f4f4f4; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.columns { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 1.5em; }
.columns svg { max-width: 100%; height: auto; }
del { background: #fdd; } ins { background: #dfd; text-decoration: none; } .note { color: #666; }
ul.advice li { margin: .3em 0; }
"""


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


def html_table(rows: Sequence[dict], columns: Sequence[str], limit: int | None = None) -> str:
    """An HTML table (text escaped; numbers right-aligned, floats with 4 significant digits)."""
    if not rows:
        return '<p class="note">no rows</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(_html_cell(row.get(c)) for c in columns) + "</tr>" for row in rows[:limit]
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_page(title: str, sections: Sequence[tuple[str, str]], intro: str = "") -> str:
    """A self-contained page (inline style, no scripts or links to fetch): a title and (heading, HTML) sections,
    each with an id made from its heading."""
    parts = [
        f'<section id="{_anchor(heading)}"><h2>{html.escape(heading)}</h2>{body}</section>'
        for heading, body in sections
    ]
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_PAGE_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{intro}{''.join(parts)}"
        "</body></html>"
    )


def _anchor(heading: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in heading.lower()).strip("-")


def _html_cell(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return f"<td>{'' if value is None else value}</td>"
    if isinstance(value, int | float):
        return (
            f'<td class="num">{value:.4g}</td>'
            if isinstance(value, float)
            else f'<td class="num">{value}</td>'
        )
    return f"<td>{html.escape(str(value))}</td>"


def hours_by(rows: Sequence[dict], field: str) -> dict[str, float]:
    """Hours per value of `field`, from each row's `duration` in seconds."""
    totals: Counter[str] = Counter()
    for row in rows:
        totals[str(row[field])] += row["duration"] / 3600
    return {k: round(v, 4) for k, v in sorted(totals.items())}
