"""The `segments` step of one source: align every processed item, cut long ones into utterances, check them.

Short items pass through whole (their word timings are a by-product); an item longer than the source's
`max_seconds` becomes segments cut at pauses, and a segment whose alignment looks wrong is dropped with its
reason. Items whose source timed them (subtitles, manifest segments) use those timings and are not aligned. Alignments are cached by content (processed audio, transcript, language, model), segment audio is
content-addressed, so a re-run aligns and cuts only what is new.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import soundfile as sf

from whisper_assets.asr.metrics import agreement_cer
from whisper_assets.audio.process import TARGET_RATE, write_pcm16
from whisper_assets.audio.vad import SpeechRegions
from whisper_assets.curation.processing import STATUS_NEEDS_SEGMENTATION, STATUS_OK
from whisper_assets.files import write_json_atomic
from whisper_assets.parallel import use_all_cores
from whisper_assets.segmentation.policy import SegmentationSettings
from whisper_assets.segmentation.timing_files import transcription, write_timing_files
from whisper_assets.sources.base import SourceBase
from whisper_assets.text.cuts import Span, cut_points, phrases
from whisper_assets.text.normalize import NO_TRANSCRIPT, normalize_transcript
from whisper_assets.text.timings import Cue, Word, cues_from_json, settle

if TYPE_CHECKING:  # torch and transformers load with the model, not with the definitions
    from whisper_assets.asr.align import Aligner

SEGMENTS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("parent_id", pa.string()),
        ("rel_path", pa.string()),
        ("audio", pa.string()),
        ("offset", pa.float64()),
        ("duration", pa.float64()),
        ("transcript", pa.string()),
        ("words", pa.int32()),
        ("probability", pa.float64()),
        ("timings", pa.string()),
        ("timed_by", pa.string()),
        ("phrases", pa.string()),
        ("pseudo_label", pa.bool_()),
        ("check_cer", pa.float64()),  # against the alignment model's transcription (None: not checked)
        ("check_hypothesis", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("reused", pa.bool_()),
    ]
)
STATUS_DROPPED = "dropped"  # trainable rows share processing's STATUS_OK
STATUS_PSEUDO_LABEL = "pseudo_label"  # a model's transcript, kept out of training unless the source opts in
TIMED_BY_SOURCE = "source"
TIMED_BY_ALIGNMENT = "alignment"
_ALIGNMENT_VERSION = 4  # bump when alignment changes its output for the same inputs
_PSEUDO_LABEL_VERSION = 1  # bump when pseudo-labelling changes its output for the same inputs
_SHORT_WORD_SECONDS = 0.02
_UNCLAIMED_SECONDS = 0.15  # speech this long with no word on it means a word is missing from the text
RETRY_FAILED_LOAD_SECONDS = 3600


@dataclass(frozen=True)
class SegmentJob:
    """A processed item with an accepted transcript, as the segments step needs it."""

    id: str
    source: str
    rel_path: str
    audio: str
    duration: float
    transcript: str
    language: str
    speech: SpeechRegions
    timings: tuple[Cue, ...] = ()  # the source's own, normalized like the transcript
    pseudo: bool = False  # no transcript came with it: a model writes one


@dataclass(frozen=True)
class SegmentPaths:
    cache_root: Path
    outputs_root: Path
    processed_root: Path


@dataclass(frozen=True)
class SegmentsReport:
    """What a segments run kept and dropped, in rows and hours, and how many rows are pseudo-labels."""

    kept: int
    kept_hours: float
    dropped: int
    dropped_hours: float
    segmented: int
    pseudo_labelled: int

    @classmethod
    def of(cls, rows: Sequence[dict]) -> SegmentsReport:
        kept = [r for r in rows if r["status"] == STATUS_OK]
        dropped = [r for r in rows if r["status"] == STATUS_DROPPED]
        return cls(
            len(kept),
            sum(r["duration"] for r in kept) / 3600,
            len(dropped),
            sum(r["duration"] for r in dropped) / 3600,
            len({r["parent_id"] for r in rows if r["id"] != r["parent_id"]}),
            sum(r["pseudo_label"] for r in rows),
        )


class LazyAligner:
    """Loads the alignment model on first use (on the GPU in bf16 or fp16 when there is one): a re-run with
    nothing new never loads it. A model that could not be loaded is remembered in `failures` (a folder) and not
    tried again for an hour, so a run without network does not wait on the hub at every item or every run."""

    def __init__(self, model_id: str, failures: Path | None = None) -> None:
        self.model_id = model_id
        self._aligner: Aligner | None = None
        self._memo = failures / f"{_content_key(model_id)}.json" if failures else None
        self.error: str | None = self._remembered_failure()

    def get(self) -> Aligner | None:
        if self._aligner is None and self.error is None:
            import torch

            from whisper_assets.asr.align import Aligner
            from whisper_assets.asr.model import load_base, resolve_device, resolve_precision

            try:
                use_all_cores()
                model, processor = load_base(self.model_id)
                device = resolve_device()
                dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(
                    resolve_precision("auto", device), torch.float32
                )
                self._aligner = Aligner(model.to(device, dtype), processor)
            except (OSError, ValueError) as exc:
                self.error = f"alignment model {self.model_id!r} could not be loaded: {exc}"
                if self._memo is not None:
                    write_json_atomic(self._memo, {"error": self.error, "at": time.time()})
        return self._aligner

    def _remembered_failure(self) -> str | None:
        if self._memo is None or not self._memo.exists():
            return None
        failure = json.loads(self._memo.read_text())
        since = time.time() - failure["at"]
        if since > RETRY_FAILED_LOAD_SECONDS:
            return None
        return f"{failure['error']} ({since / 60:.0f} min ago; tried again {RETRY_FAILED_LOAD_SECONDS // 60} min after)"


def segment_jobs(
    processed: Sequence[dict],
    transcripts: Sequence[dict],
    inventory: Sequence[dict],
    pseudo_labels: bool = False,
) -> list[SegmentJob]:
    """Processed items that can be trained on whole or once segmented, with their transcripts; with
    `pseudo_labels`, items that came without a transcript too (to be transcribed)."""
    text = {r["id"]: r["transcript"] for r in transcripts if r["accepted"]}
    untranscribed = (
        {r["id"] for r in transcripts if r["rejection_reason"] == NO_TRANSCRIPT} if pseudo_labels else set()
    )
    timings = {r["id"]: r["timings"] for r in transcripts if r["accepted"] and r.get("timings")}
    language = {r["id"]: r["language"] for r in inventory}
    return [
        SegmentJob(
            row["id"],
            row["source"],
            row["rel_path"],
            row["audio"],
            row["duration"],
            text.get(row["id"], ""),
            language[row["id"]],
            SpeechRegions(
                tuple(map(tuple, json.loads(row["speech_regions"] or "[]"))),
                row["duration"],
                row["speech_peak"],
            ),
            tuple(cues_from_json(timings[row["id"]])) if row["id"] in timings else (),
            row["id"] in untranscribed,
        )
        for row in processed
        if row["status"] in (STATUS_OK, STATUS_NEEDS_SEGMENTATION)
        and (row["id"] in text or row["id"] in untranscribed)
    ]


def segment_items(
    jobs: Sequence[SegmentJob],
    source: SourceBase,
    aligner: LazyAligner,
    settings: SegmentationSettings,
    paths: SegmentPaths,
    labeler: LazyAligner | None = None,
) -> list[dict]:
    """A row per training utterance (a short item, or a segment of one longer than the source's max_seconds)
    and per dropped segment; the items' timing files are written under `paths.outputs_root`. Jobs without a
    transcript are transcribed by `labeler` (None: the aligner's model) first, normalized by the source's
    policy; their rows are flagged, and kept out of training unless the source says `pseudo_labels: train`."""
    packed = (
        _align_short_items(jobs, aligner, paths.cache_root, source.audio.max_seconds)
        if settings.pack_short_items
        else set()
    )
    rows: list[dict] = []
    for job in jobs:
        if job.pseudo:
            rows += _pseudo_labelled(job, source, aligner, labeler or aligner, settings, paths)
        else:
            rows += _segment(job, aligner, settings, source.audio.max_seconds, source.karaoke, paths)
    checked = [
        r
        for r in rows
        if r["status"] in (STATUS_OK, STATUS_PSEUDO_LABEL)
        and (r["id"] != r["parent_id"] or r["pseudo_label"])
    ]
    if settings.max_cer is not None and checked and (model := aligner.get()) is not None:
        _check_transcription(checked, model, aligner.model_id, settings.max_cer, jobs, paths.cache_root)
    for row in rows:
        if row["parent_id"] in packed:
            row["reused"] = False
    return rows


_PACKED_READ = 256  # clips read into memory at once for packed alignment


def _align_short_items(
    jobs: Sequence[SegmentJob], aligner: LazyAligner, cache_root: Path, max_seconds: float
) -> set[str]:
    """Align the items trained whole that have no alignment yet, several to a window (Aligner.align_packed),
    and cache them; the ids aligned. An item that cannot be read is left to be aligned alone (and say why)."""
    todo = [
        job
        for job in jobs
        if not job.pseudo
        and not job.timings
        and job.duration <= max_seconds
        and not _alignment_path(job, aligner, cache_root).exists()
    ]
    if not todo or (model := aligner.get()) is None:
        return set()
    from whisper_assets.asr.align import Clip

    done = set()
    for language in sorted({job.language for job in todo}, key=str):
        same = [job for job in todo if job.language == language]
        for start in range(0, len(same), _PACKED_READ):
            readable, clips = [], []
            for job in same[start : start + _PACKED_READ]:
                try:
                    clips.append(
                        Clip(sf.read(job.audio, dtype="float32")[0], job.transcript.split(), job.speech)
                    )
                except (OSError, sf.LibsndfileError):
                    continue
                readable.append(job)
            try:
                aligned = model.align_packed(clips, language)
            except (RuntimeError, ValueError):
                continue  # aligned alone later, where each item records its own error
            for job, words in zip(readable, aligned, strict=True):
                write_json_atomic(_alignment_path(job, aligner, cache_root), [w.to_json() for w in words])
                done.add(job.id)
    return done


def _segment(
    job: SegmentJob,
    aligner: LazyAligner,
    settings: SegmentationSettings,
    max_seconds: float,
    karaoke: bool,
    paths: SegmentPaths,
) -> list[dict]:
    """The rows of one item: itself whole, or its segments; timed by its source or by alignment."""
    if job.timings:
        words, word_level = source_units(job.timings, job.duration)
        reused, error, timed_by = True, None, TIMED_BY_SOURCE
    else:
        words, reused, error = _alignment(job, aligner, paths.cache_root)
        word_level, timed_by = True, TIMED_BY_ALIGNMENT
    long = job.duration > max_seconds
    if words is None:
        return [_whole(job, reused, error) if not long else _unsegmented(job, error)]
    spans = (
        cut_points(words, job.duration, max_seconds, settings.pad_seconds)
        if long and words
        else [Span(0, len(words) - 1, 0.0, round(job.duration, 3))]
    )
    by = f"alignment with {aligner.model_id}" if timed_by == TIMED_BY_ALIGNMENT else "the source"
    doc = transcription(job.id, job.language, job.duration, by, words, spans, word_level)
    folder = paths.outputs_root / job.id
    write_timing_files(folder, doc, karaoke)
    timings = {"timings": str(folder / "transcription_base.json"), "timed_by": timed_by}
    if not long:
        own_phrases = json.dumps(phrases(words, 0.0, job.duration), ensure_ascii=False)
        return [_whole(job, reused, None, words) | timings | {"phrases": own_phrases}]
    doubts = settings if timed_by == TIMED_BY_ALIGNMENT else None  # a source's own timings are trusted
    rows = [
        _cut(job, index, span, words, doubts, max_seconds, paths.processed_root)
        | timings
        | {"reused": reused}
        for index, span in enumerate(spans)
    ]
    if doubts:
        for before, after, span in zip(rows, rows[1:], spans[1:], strict=False):
            gap = (words[span.first - 1].end, words[span.first].start)
            if any(r["status"] == STATUS_OK for r in (before, after)) and _speech_between(job.speech, *gap):
                reason = (
                    "speech between this segment's words and the next's belongs to neither: an edge word is "
                )
                for row in (before, after):
                    if row["status"] == STATUS_OK:
                        row |= _dropped(reason + "on the wrong side or lost")
    return rows


def _pseudo_labelled(
    job: SegmentJob,
    source: SourceBase,
    aligner: LazyAligner,
    labeler: LazyAligner,
    settings: SegmentationSettings,
    paths: SegmentPaths,
) -> list[dict]:
    """The rows of an item without a transcript: transcribed by `labeler`, normalized by the source's policy,
    then segmented like any item; flagged, and held out of training unless the source opts in."""
    text, error = _pseudo_label(job, labeler, paths.cache_root)
    if text is not None:
        text = normalize_transcript(text, source.transcripts, job.language).text or None
    if text is None:
        reason = f"no pseudo-label: {error or 'nothing left once normalized'}"
        return [_whole(job, False, None) | _dropped(reason) | {"pseudo_label": True}]
    job = replace(job, transcript=text)
    rows = _segment(job, aligner, settings, source.audio.max_seconds, source.karaoke, paths)
    for row in rows:
        row["pseudo_label"] = True
        if row["status"] == STATUS_OK and source.pseudo_labels != "train":
            row |= {
                "status": STATUS_PSEUDO_LABEL,
                "reason": f"pseudo-label by {labeler.model_id}: trained on only with pseudo_labels: train",
            }
    return rows


def _pseudo_label(job: SegmentJob, labeler: LazyAligner, cache_root: Path) -> tuple[str | None, str | None]:
    """The labelling model's transcript of the item (cached by content), or why there is none."""
    key = _content_key(_PSEUDO_LABEL_VERSION, Path(job.audio).stem, job.language, labeler.model_id)
    path = cache_root / "pseudo_labels" / key[:2] / f"{key}.json"
    if not path.exists():
        model = labeler.get()
        if model is None:
            return None, labeler.error
        from whisper_assets.segmentation.pseudo_labels import pseudo_label

        audio, _ = sf.read(job.audio, dtype="float32")
        write_json_atomic(path, {"text": pseudo_label(audio, job.speech, job.language, model)})
    text = json.loads(path.read_text())["text"]
    return (text, None) if text else (None, f"{labeler.model_id} heard no words")


def _alignment(
    job: SegmentJob, aligner: LazyAligner, cache_root: Path
) -> tuple[list[Word] | None, bool, str | None]:
    """The item's aligned words (cached), whether they came from the cache, and why there are none."""
    path = _alignment_path(job, aligner, cache_root)
    if path.exists():
        return [Word(**w) for w in json.loads(path.read_text())], True, None
    model = aligner.get()
    if model is None:
        return None, False, aligner.error
    try:
        audio, _ = sf.read(job.audio, dtype="float32")
        words = model.align(audio, job.transcript.split(), job.language, job.speech)
    except (RuntimeError, ValueError, OSError, sf.LibsndfileError) as exc:
        return None, False, f"alignment failed: {exc}"
    write_json_atomic(path, [w.to_json() for w in words])
    return words, False, None


def _alignment_path(job: SegmentJob, aligner: LazyAligner, cache_root: Path) -> Path:
    key = _content_key(
        _ALIGNMENT_VERSION, Path(job.audio).stem, job.transcript, job.language, aligner.model_id
    )
    return cache_root / "alignment" / key[:2] / f"{key}.json"


def source_units(cues: Sequence[Cue], duration: float) -> tuple[list[Word], bool]:
    """What a source-timed item is cut by: its words when every line has them, else its lines (as units
    spanning the line), and whether they are words."""
    settled = settle(cues, duration)
    if all(cue.words for cue in settled):
        return [w for cue in settled for w in cue.words], True
    return [Word(cue.text, cue.start, cue.end) for cue in settled], False


def _content_key(*parts: object) -> str:
    return hashlib.blake2s(json.dumps(parts).encode(), digest_size=16).hexdigest()


def _dropped(reason: str) -> dict:
    return {"status": STATUS_DROPPED, "reason": reason}


def _whole(job: SegmentJob, reused: bool, error: str | None, words: Sequence[Word] = ()) -> dict:
    """A short item: trained on whole, with or without word timings."""
    return {
        "id": job.id,
        "source": job.source,
        "parent_id": job.id,
        "rel_path": job.rel_path,
        "audio": job.audio,
        "offset": 0.0,
        "duration": job.duration,
        "transcript": job.transcript,
        "words": len(job.transcript.split()),
        "probability": _mean_probability(words),
        "timings": None,
        "timed_by": None,
        "phrases": None,
        "pseudo_label": False,
        "status": STATUS_OK,
        "reason": f"no word timings: {error}" if error else None,
        "reused": reused,
    }


def _unsegmented(job: SegmentJob, error: str | None) -> dict:
    reason = f"{job.duration:.1f} s is too long to train on whole and was not segmented: {error}"
    return _whole(job, False, None) | {"id": f"{job.id}-s000"} | _dropped(reason)


def _cut(
    job: SegmentJob,
    index: int,
    span: Span,
    words: Sequence[Word],
    doubts: SegmentationSettings | None,
    max_seconds: float,
    processed_root: Path,
) -> dict:
    """One segment of a long item: its audio cut out (content-addressed), or the reason it is dropped;
    `doubts` (None for a source's own timings) are the alignment checks it must pass."""
    own = words[span.first : span.last + 1]
    key = hashlib.blake2s(f"{Path(job.audio).stem}:{span.start}:{span.end}".encode(), digest_size=16)
    audio = processed_root / job.source / "segments" / key.hexdigest()[:2] / f"{key.hexdigest()}.wav"
    if span.duration > max_seconds:
        reason = f"no pause to cut at: {span.duration:.1f} s without one is longer than {max_seconds:g} s"
    elif doubts:
        word, repeats = repeated_run(words, span.first, span.last)
        reason = (
            f"{word!r} said {repeats} times in a row: alignment cannot count such runs"
            if repeats > doubts.max_repeats
            else doubt(own, doubts) or unclaimed_speech(own, span, job.speech)
        )
    else:
        reason = None
    if reason is None and not audio.exists():
        with sf.SoundFile(job.audio) as parent:
            parent.seek(int(span.start * TARGET_RATE))
            samples = parent.read(round(span.duration * TARGET_RATE), dtype="float32")
        write_pcm16(audio, samples)
    return {
        "id": f"{job.id}-s{index:03d}",
        "source": job.source,
        "parent_id": job.id,
        "rel_path": job.rel_path,
        "audio": str(audio) if reason is None else None,
        "offset": span.start,
        "duration": round(span.duration, 3),
        "transcript": " ".join(w.word for w in own),
        "words": len(own),
        "probability": _mean_probability(own),
        "phrases": json.dumps(phrases(own, span.start, span.end), ensure_ascii=False),
        "pseudo_label": False,
        "status": STATUS_OK if reason is None else STATUS_DROPPED,
        "reason": reason,
    }


def doubt(words: Sequence[Word], settings: SegmentationSettings) -> str | None:
    """Why a cut segment's alignment is not trusted, or None."""
    longest = max(words, key=lambda w: w.end - w.start)
    if longest.end - longest.start > settings.max_word_seconds:
        return f"implausible word duration: {longest.word!r} lasts {longest.end - longest.start:.1f} s"
    short = sum(w.end - w.start < _SHORT_WORD_SECONDS for w in words) / len(words)
    if short > settings.max_short_word_share:
        return f"implausible word durations: {short:.0%} of words last under 20 ms"
    probability = _mean_probability(words)
    if probability is not None and probability < settings.min_probability:
        return f"low alignment probability {probability:.2f} < {settings.min_probability:g}"
    return None


def repeated_run(words: Sequence[Word], first: int, last: int) -> tuple[str, int]:
    """The word repeated most times in a row among words first..last, and how many times, counting the run
    beyond them (a segment that holds three of twenty "zero"s is as hard to count as all twenty)."""
    texts = [w.word.lower().strip(".,!?;:") for w in words]
    best = ("", 0)
    k = first
    while k <= last:
        start = end = k
        while start > 0 and texts[start - 1] == texts[k]:
            start -= 1
        while end + 1 < len(texts) and texts[end + 1] == texts[k]:
            end += 1
        best = max(best, (texts[k], end - start + 1), key=lambda run: run[1])
        k = end + 1
    return best


def _speech_between(speech: SpeechRegions, start: float, end: float) -> bool:
    """Whether the pause from one word's end to the next word's start holds speech of its own, apart from the
    words' own speech (a word the alignment put elsewhere)."""
    return any(s >= start and e <= end and e - s >= _UNCLAIMED_SECONDS for s, e in speech.regions)


def unclaimed_speech(words: Sequence[Word], span: Span, speech: SpeechRegions) -> str | None:
    """Speech inside a segment that none of its words lies on: a word the alignment lost or gave to a
    neighbour (a repeated word miscounted, an edge word on the wrong side), so the text is not what is said."""
    for start, end in speech.regions:
        inside = min(end, span.end) - max(start, span.start)
        if inside < _UNCLAIMED_SECONDS or inside < (end - start) / 2:
            continue
        if not any(w.start < end and w.end > start for w in words):
            return f"speech without a word at {start:.2f}-{end:.2f} s: the alignment lost or moved a word"
    return None


def _check_transcription(
    rows: list[dict],
    aligner: Aligner,
    model_id: str,
    max_cer: float,
    jobs: Sequence[SegmentJob],
    cache_root: Path,
) -> None:
    """Record each row's CER against the alignment model's transcription of its audio (hypotheses cached by
    audio, model and language, so only new segments are transcribed), and drop the rows above the threshold:
    `max_cer`, or twice the median CER of the rows in the same language, whichever is higher."""
    from whisper_assets.asr.transcribe import transcribe

    language = {job.id: job.language for job in jobs}

    def cache(row: dict) -> Path:  # a row's audio file is named by its content
        key = _content_key(Path(row["audio"]).stem, model_id, language[row["parent_id"]])
        return cache_root / "segment_transcripts" / key[:2] / f"{key}.json"

    todo = [r for r in rows if not cache(r).exists()]
    items = [{"audio": r["audio"], "language": language[r["parent_id"]]} for r in todo]
    for row, hypothesis in zip(todo, transcribe(aligner.model, aligner.processor, items), strict=True):
        write_json_atomic(cache(row), {"hypothesis": hypothesis})
    for row in rows:
        hypothesis = json.loads(cache(row).read_text())["hypothesis"]
        row |= {
            "check_hypothesis": hypothesis,
            "check_cer": round(agreement_cer(row["transcript"], hypothesis, language[row["parent_id"]]), 4),
        }
    for lang in {language[r["parent_id"]] for r in rows}:
        same = [r for r in rows if language[r["parent_id"]] == lang]
        limit = max(max_cer, 2 * float(np.median([r["check_cer"] for r in same])))
        for row in same:
            if row["check_cer"] > limit:
                row |= _dropped(
                    f"transcription disagrees with the text: CER {row['check_cer']:.2f} > {limit:.2f} "
                    f"({model_id} heard {row['check_hypothesis'][:80]!r})"
                )


def _mean_probability(words: Sequence[Word]) -> float | None:
    known = [w.probability for w in words if w.probability is not None]
    return round(float(np.mean(known)), 4) if known else None
