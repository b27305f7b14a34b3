"""Normalize the transcripts of an inventory and report what changed and what was rejected."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pyarrow as pa

from whisper_assets.reporting import markdown_table
from whisper_assets.text.normalize import normalize_transcript
from whisper_assets.text.policy import TranscriptPolicy
from whisper_assets.text.timings import Cue, cues_from_json, cues_to_json, normalize_cues

TRANSCRIPTS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("rel_path", pa.string()),
        ("transcript", pa.string()),
        ("transcript_raw", pa.string()),
        ("changes", pa.list_(pa.string())),
        ("encoding", pa.string()),
        ("encoding_converted", pa.bool_()),
        ("timings", pa.string()),
        ("accepted", pa.bool_()),
        ("rejection_reason", pa.string()),
    ]
)
_EXAMPLES = 5


@dataclass
class TranscriptReport:
    total: int = 0
    changed: int = 0
    rejected: int = 0
    converted_encodings: Counter = field(default_factory=Counter)
    changes: Counter = field(default_factory=Counter)
    rejections: Counter = field(default_factory=Counter)
    changed_examples: list[dict] = field(default_factory=list)
    rejected_examples: list[dict] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"**{self.total}** transcripts: **{self.changed}** changed, **{self.rejected}** rejected."]
        if self.converted_encodings:
            found = ", ".join(f"{enc} ({n})" for enc, n in self.converted_encodings.most_common())
            lines.append(f"Converted to UTF-8 from: {found}.")
        if self.changed_examples:
            lines += ["", markdown_table(self.changed_examples, ("file", "before", "after"))]
        if self.rejected_examples:
            lines += ["", markdown_table(self.rejected_examples, ("file", "transcript", "reason"))]
        return "\n".join(lines)


def normalize_inventory(
    rows: Sequence[dict], policy: TranscriptPolicy
) -> tuple[list[dict], TranscriptReport]:
    """Normalize the transcript of every readable audio row of an inventory."""
    out = []
    report = TranscriptReport()
    for row in rows:
        if not (row["is_audio"] and row["readable"]):
            continue
        result = normalize_transcript(row["transcript_raw"], policy, row["language"], row["duration"])
        timings = None
        if (
            row.get("timings") and result.rejection is None
        ):  # each timed line normalized alike; they are the text
            cues = _normalized_cues(row["timings"], policy, row["language"])
            result = replace(result, text=" ".join(cue.text for cue in cues))
            timings = cues_to_json(cues)
        encoding = row["transcript_encoding"]
        converted = encoding not in (None, "utf-8", "ascii")
        out.append(
            {
                "id": row["id"],
                "source": row["source"],
                "rel_path": row["rel_path"],
                "transcript": result.text,
                "transcript_raw": row["transcript_raw"],
                "changes": list(result.changes),
                "encoding": encoding,
                "encoding_converted": converted,
                "timings": timings,
                "accepted": result.rejection is None,
                "rejection_reason": result.rejection,
            }
        )
        report.total += 1
        if converted:
            report.converted_encodings[encoding] += 1
        if result.rejection:
            report.rejected += 1
            report.rejections[result.rejection] += 1
            if len(report.rejected_examples) < _EXAMPLES:
                report.rejected_examples.append(
                    {"file": row["rel_path"], "transcript": row["transcript_raw"], "reason": result.rejection}
                )
        elif result.changes:
            report.changed += 1
            report.changes.update(result.changes)
            if len(report.changed_examples) < _EXAMPLES:
                report.changed_examples.append(
                    {"file": row["rel_path"], "before": row["transcript_raw"], "after": result.text}
                )
    return out, report


def _normalized_cues(timings: str, policy: TranscriptPolicy, language: str) -> list[Cue]:
    return normalize_cues(
        cues_from_json(timings), lambda text: normalize_transcript(text, policy, language).text
    )
