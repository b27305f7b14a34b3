"""Training data: manifest items -> (packed) samples -> cached log-mel features and label ids -> batches."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from transformers import WhisperProcessor

from whisper_assets.asr.audio import PACK_GAP_SECONDS, SAMPLE_RATE, load_audio

log = logging.getLogger(__name__)
_FEATURE_CACHE_VERSION = 1
TIMESTAMP_SECONDS = 0.02  # one timestamp token step
IGNORED_LABEL = -100  # label padding, which the loss leaves out


@dataclass(frozen=True)
class Sample:
    """One training example: one utterance, or several of one speaker packed into a single window."""

    ids: tuple[str, ...]
    audio: tuple[str, ...]
    text: str
    language: str
    duration: float
    timestamps: tuple[Phrase, ...] | None = None  # trained with timestamp tokens: its phrases


Phrase = tuple[float, float, str]  # start, end (seconds from the sample's start), text


def to_samples(
    items: Sequence[dict],
    window_seconds: float,
    pack: bool,
    timestamp_probability: float = 0.0,
    seed: int = 0,
) -> list[Sample]:
    """One sample per item, or (pack=True) consecutive items of one speaker and language packed greedily.

    Packing follows distil-whisper: short utterances are concatenated with a short pause, and their transcripts
    joined, until the next one would overflow the encoder window. Items without a speaker are never packed.
    A share `timestamp_probability` of the samples whose items all have phrase timings (drawn by `seed`, the
    same every epoch) keeps them, so their labels teach segment timestamps as distil-whisper does.
    """
    samples = _samples(items, window_seconds, pack)
    return [
        replace(s, timestamps=None) if _draw(seed, s.ids) >= timestamp_probability else s for s in samples
    ]


def _draw(seed: int, ids: tuple[str, ...]) -> float:
    """A uniform number in [0, 1) fixed by the seed and the sample's items."""
    digest = hashlib.blake2s(json.dumps([seed, ids]).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _samples(items: Sequence[dict], window_seconds: float, pack: bool) -> list[Sample]:
    fitting = [i for i in items if i["duration"] <= window_seconds]
    if len(fitting) < len(items):
        log.warning(
            "%d of %d items are longer than the %.1f s window and were left out",
            len(items) - len(fitting),
            len(items),
            window_seconds,
        )
    if not pack:
        return [_packed([i]) for i in fitting]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for item in fitting:
        key = (
            (item["source"], item["speaker"], item["language"])
            if item.get("speaker")
            else ("single", item["id"])
        )
        groups[key].append(item)
    samples = []
    for group in groups.values():
        current: list[dict] = []
        for item in sorted(group, key=lambda i: i["id"]):
            length = sum(i["duration"] for i in current) + PACK_GAP_SECONDS * len(current) + item["duration"]
            if current and length > window_seconds:
                samples.append(_packed(current))
                current = []
            current.append(item)
        samples.append(_packed(current))
    return sorted(samples, key=lambda s: s.ids)


def _packed(items: list[dict]) -> Sample:
    duration = sum(i["duration"] for i in items) + PACK_GAP_SECONDS * (len(items) - 1)
    timestamps: list[Phrase] | None = []
    at = 0.0
    for item in items:
        if timestamps is not None and item.get("timestamps"):
            timestamps += [(round(at + s, 2), round(at + e, 2), text) for s, e, text in item["timestamps"]]
        else:
            timestamps = None  # one item without timings: the sample has none
        at += item["duration"] + PACK_GAP_SECONDS
    return Sample(
        tuple(i["id"] for i in items),
        tuple(i["audio"] for i in items),
        " ".join(i["transcript"].strip() for i in items),
        items[0]["language"],
        duration,
        tuple(timestamps) if timestamps else None,
    )


def label_ids(
    processor: WhisperProcessor,
    text: str,
    language: str | None,
    task: str,
    multilingual: bool,
    timestamps: Sequence[Phrase] | None = None,
) -> list[int]:
    """<|startoftranscript|> [<|lang|> <|task|>] <|notimestamps|> text <|endoftext|>, as Whisper decodes; with
    `timestamps`, no <|notimestamps|> and each phrase as <|start|> text <|end|> instead of the text."""
    tokenizer = processor.tokenizer
    prefix = ["<|startoftranscript|>"]
    if multilingual:
        prefix += [f"<|{language}|>" if language else None, f"<|{task}|>"]
    if not timestamps:
        prefix.append("<|notimestamps|>")
    ids = tokenizer.convert_tokens_to_ids([t for t in prefix if t])
    if not timestamps:
        return ids + tokenizer.encode(" " + text.strip(), add_special_tokens=False) + [tokenizer.eos_token_id]
    begin = timestamp_begin(tokenizer)
    if begin is None:
        raise ValueError("this tokenizer has no timestamp tokens (<|0.00|> ...): train without timestamps")
    for start, end, phrase in timestamps:
        ids.append(begin + round(start / TIMESTAMP_SECONDS))
        ids += tokenizer.encode(" " + phrase.strip(), add_special_tokens=False)
        ids.append(begin + round(end / TIMESTAMP_SECONDS))
    return [*ids, tokenizer.eos_token_id]


def fitting_labels(
    samples: Sequence[Sample],
    processor: WhisperProcessor,
    language: str | None,
    task: str,
    multilingual: bool,
    max_tokens: int,
) -> list[Sample]:
    """The samples whose label ids fit the decoder's `max_tokens` positions; the others are left out (logged).

    A long window with a long transcript, or a tokenizer that splits a language into bytes, can exceed them, and
    one such sample would stop training. Only transcripts long enough to exceed the limit are tokenized: every
    token but the special ones holds at least one byte.
    """

    def fits(sample: Sample) -> bool:
        specials = 6 + 2 * len(sample.timestamps or ())
        if len(sample.text.encode()) + specials <= max_tokens:
            return True
        sample_language = language or (sample.language if multilingual else None)
        ids = label_ids(processor, sample.text, sample_language, task, multilingual, sample.timestamps)
        return len(ids) <= max_tokens

    kept = [s for s in samples if fits(s)]
    if len(kept) < len(samples):
        log.warning(
            "%d of %d samples have labels longer than the decoder's %d positions and were left out",
            len(samples) - len(kept),
            len(samples),
            max_tokens,
        )
    return kept


def timestamp_begin(tokenizer) -> int | None:
    """The id of <|0.00|> (Whisper's timestamp tokens follow <|notimestamps|>), or None without them."""
    begin = tokenizer.convert_tokens_to_ids("<|notimestamps|>") + 1
    return begin if tokenizer.convert_ids_to_tokens(begin) == "<|0.00|>" else None


class FeatureCache:
    """Log-mel features and label ids computed once, content-addressed, memory-mapped on reuse.

    The key covers the audio files (processed files' paths are content addresses), the transcript and language,
    the feature settings and the tokenizer. A missing or unreadable entry is recomputed (and logged).
    """

    def __init__(self, root: Path, processor: WhisperProcessor, task: str, multilingual: bool):
        self.root = root
        self.processor = processor
        self.task = task
        self.multilingual = multilingual
        extractor = processor.feature_extractor
        tokenizer_state = json.dumps(processor.tokenizer.get_vocab(), sort_keys=True)
        settings = {
            "version": _FEATURE_CACHE_VERSION,
            "mels": extractor.feature_size,
            "samples": extractor.n_samples,
            "hop": extractor.hop_length,
            "task": task,
            "multilingual": multilingual,
            "tokenizer": hashlib.sha256(tokenizer_state.encode()).hexdigest(),
        }
        self._salt = json.dumps(settings, sort_keys=True)
        self.hits = self.misses = self.repaired = 0

    def key(self, sample: Sample, language: str | None) -> str:
        audio = [str(Path(a).resolve()) for a in sample.audio]
        blob = json.dumps([self._salt, audio, sample.text, language, sample.timestamps])
        return hashlib.blake2s(blob.encode(), digest_size=16).hexdigest()

    def get(self, sample: Sample, language: str | None) -> tuple[np.ndarray, np.ndarray]:
        folder = self.root / (key := self.key(sample, language))[:2] / key
        if (folder / "labels.npy").exists():
            try:
                features = np.load(folder / "features.npy", mmap_mode="r")
                labels = np.load(folder / "labels.npy")
                self.hits += 1
                return features, labels
            except (OSError, ValueError) as exc:
                log.warning("feature cache entry %s unreadable (%s): recomputing", key, exc)
                self.repaired += 1
        self.misses += 1
        features, labels = self.compute(sample, language)
        self._store(folder, features, labels)
        return features, labels

    def compute(self, sample: Sample, language: str | None) -> tuple[np.ndarray, np.ndarray]:
        labels = label_ids(
            self.processor, sample.text, language, self.task, self.multilingual, sample.timestamps
        )
        return self.features(load_audio(sample.audio)), np.asarray(labels, dtype=np.int64)

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Log-mel features of 16 kHz audio (padded or cut to the window)."""
        extracted = self.processor.feature_extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="np")
        return extracted.input_features[0].astype(np.float32)

    @staticmethod
    def _store(folder: Path, features: np.ndarray, labels: np.ndarray) -> None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
        np.save(staging / "features.npy", features)
        np.save(staging / "labels.npy", labels)  # written last: its presence marks a complete entry
        try:
            os.replace(staging, folder)
        except OSError:  # another worker stored the same entry first
            for leftover in staging.iterdir():
                leftover.unlink()
            staging.rmdir()


class SpeechDataset(torch.utils.data.Dataset):
    """Samples as features and labels: from the cache, or (augmented this epoch) computed from changed audio."""

    def __init__(
        self,
        samples: Sequence[Sample],
        cache: FeatureCache,
        language: str | None,
        augment: Callable[[np.ndarray, Sequence[str], int], np.ndarray | None] | None = None,
    ):
        self.samples = list(samples)
        self.cache = cache
        self.language = language  # None: each sample's own language
        self.augment = augment
        self.epoch = 0  # set by the trainer before each epoch: augmentation draws depend on it

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        language = self.language or (sample.language if self.cache.multilingual else None)
        features, labels = self.cache.get(sample, language)
        if (
            self.augment
            and (audio := self.augment(load_audio(sample.audio), sample.ids, self.epoch)) is not None
        ):
            features = self.cache.features(audio)
        return {"input_features": torch.from_numpy(np.array(features)), "labels": torch.from_numpy(labels)}


def collate(batch: list[dict], decoder_start_token_id: int) -> dict:
    """Stack features; pad labels with IGNORED_LABEL; the model prepends the start token."""
    features = torch.stack([b["input_features"] for b in batch])
    longest = max(len(b["labels"]) for b in batch)
    labels = torch.full((len(batch), longest), IGNORED_LABEL, dtype=torch.long)
    for row, item in enumerate(batch):
        labels[row, : len(item["labels"])] = item["labels"]
    if bool((labels[:, 0] == decoder_start_token_id).all()):
        labels = labels[:, 1:]
    return {"input_features": features, "labels": labels}


class ResumableBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Deterministic batches per (seed, epoch), optionally grouped by length, that can start mid-epoch.

    Indices below len(lengths) are the domain samples an epoch goes through once; with `replay` samples (the
    dataset's indices after them), each batch holds `replay_per_batch` of those, drawn in a per-epoch order
    and cycled, and `batch_size - replay_per_batch` domain samples.
    """

    def __init__(
        self,
        lengths: Sequence[float],
        batch_size: int,
        seed: int,
        group_by_length: bool,
        replay: int = 0,
        replay_per_batch: int = 0,
    ):
        if replay_per_batch and not 0 < replay_per_batch < batch_size:
            raise ValueError(
                f"replay_per_batch must be between 1 and {batch_size - 1}, not {replay_per_batch}"
            )
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.replay = replay
        self.replay_per_batch = replay_per_batch if replay else 0
        self.epoch = 0
        self.start_batch = 0

    @property
    def domain_per_batch(self) -> int:
        return self.batch_size - self.replay_per_batch

    def batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths)).tolist()
        size = self.domain_per_batch
        if self.group_by_length:  # sort inside mega-batches so a batch pads little, then shuffle batches
            mega = size * 50
            order = [
                i
                for start in range(0, len(order), mega)
                for i in sorted(order[start : start + mega], key=lambda k: -self.lengths[k])
            ]
        batches = [order[i : i + size] for i in range(0, len(order), size)]
        if self.group_by_length:  # a short batch stays last, where accelerate's batch sharding expects it
            full = len(batches) - (len(order) % size > 0)
            batches = [batches[i] for i in rng.permutation(full)] + batches[full:]
        if self.replay_per_batch:
            needed = len(batches) * self.replay_per_batch
            rounds = -(-needed // self.replay)
            pool = [
                len(self.lengths) + i for _ in range(rounds) for i in rng.permutation(self.replay).tolist()
            ]
            batches = [
                batch + pool[k * self.replay_per_batch : (k + 1) * self.replay_per_batch]
                for k, batch in enumerate(batches)
            ]
        return batches

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.domain_per_batch)

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches(self.epoch)[self.start_batch :]
