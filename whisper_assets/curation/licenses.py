"""DATA_LICENSES.md: license and provenance of every dataset source, from settings and per-item provenance."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from whisper_assets.sources.registry import DatasetSource

_ITEM_FIELDS = ("license", "author", "uploader", "caption_kind")


def licenses_markdown(sources: Sequence[DatasetSource], inventory: Sequence[dict]) -> str:
    """One section per source: kind, declared license and provenance, items, and what items say of themselves."""
    lines = [
        "# Data licenses and provenance",
        "",
        f"Generated {datetime.now(UTC).isoformat(timespec='seconds')} by the `data_licenses` asset from the settings "
        "file and each item's recorded provenance. Check every license before you publish a model.",
    ]
    by_source: dict[str, list[dict]] = {}
    for row in inventory:
        by_source.setdefault(row["source"], []).append(row)
    for source in sorted(sources, key=lambda s: s.name):
        rows = by_source.get(source.name, [])
        usable = [r for r in rows if r["is_audio"] and r["readable"]]
        hours = sum(r["duration"] or 0 for r in usable) / 3600
        lines += [
            "",
            f"## {source.name}",
            "",
            "| | |",
            "|---|---|",
            f"| kind | {source.kind} |",
            f"| language | {source.language} |",
            f"| license (declared) | {source.license} |",
            f"| provenance (declared) | {source.provenance or '-'} |",
            f"| items | {len(usable)} readable audio files, {hours:.2f} h |",
            f"| origin | {_origin(source)} |",
        ]
        provenance = [json.loads(r["provenance"]) for r in usable if r.get("provenance")]
        for field in _ITEM_FIELDS:
            counts = Counter(str(p[field]) for p in provenance if p.get(field))
            if counts:
                listed = ", ".join(f"{value} ({n})" for value, n in counts.most_common(10))
                lines.append(f"| item {field} | {listed} |")
        retrieved = sorted(p["retrieved"] for p in provenance if p.get("retrieved"))
        if retrieved:
            lines.append(f"| retrieved | {retrieved[0]} to {retrieved[-1]} |")
        urls = sorted({p["url"] for p in provenance if p.get("url")})
        if urls:
            lines.append(f"| urls | {len(urls)} (first: {urls[0]}) |")
    return "\n".join(lines) + "\n"


def _origin(source: DatasetSource) -> str:
    for field in ("base_url", "path", "location"):
        if getattr(source, field, None):
            return str(getattr(source, field))
    if getattr(source, "urls", None):
        return ", ".join(source.urls)
    return f"uploads/{source.name}/"
