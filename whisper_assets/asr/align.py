"""Forced alignment: word timestamps for a known transcript from Whisper's cross-attention.

The reference tokens are teacher-forced (not recognized), the cross-attention of the model's alignment heads is
normalized and median-filtered as OpenAI's `find_alignment` does, and the words are placed on its frames by that
score and by where the speech is (`word_path`: VAD and loudness; each frame in one word or a pause). Audio of any
length is aligned in 30 s windows: each window is given the next words
(about as many as its speech can hold, estimated from the recording's speaking rate; the path may stop before
they run out), the words that end clearly inside it are kept, and the next window starts where the last kept word ends. Short clips are aligned several
to a window (`align_packed`): alone, each would be padded to the full 30 s and cost a whole encoder pass.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from transformers import WhisperProcessor

from whisper_assets.asr.audio import SAMPLE_RATE
from whisper_assets.asr.model import is_multilingual, language_token, unwrap, window_seconds
from whisper_assets.asr.window import FRAME_SECONDS
from whisper_assets.asr.word_path import word_path
from whisper_assets.audio.vad import SpeechRegions
from whisper_assets.text.timings import Word

_MEDIAN_WIDTH = 7  # OpenAI's medfilt_width
_KEEP_MARGIN_SECONDS = 1.0  # a word must end this far before a window's end to be kept from that window
_DOUBT_SHARE = 0.1  # a word is doubted when its probability is below this share of its window's median
_DOUBT_TAIL_SECONDS = 5.0  # ... in a window's last seconds
_FEED_SLACK = 1.5  # feed this many times the words a window's speech is expected to hold
PACK_GAP_SECONDS = 1.0  # silence laid between packed clips
_PACK_MARGIN_SECONDS = 1.0  # packed clips end this far before the window's end
_QUIET_DB = -80.0  # the floor of a pause of digital silence
_LOUD_ABOVE_FLOOR_DB = 15.0  # a frame this far above its nearest pause's quietest tenth is loud


@dataclass(frozen=True)
class Clip:
    """A short recording to align: 16 kHz samples, its words, and its speech regions when known."""

    audio: np.ndarray
    words: Sequence[str]
    speech: SpeechRegions | None = None


class Aligner:
    """Aligns transcripts to 16 kHz audio with one Whisper model (any size; plain or LoRA-wrapped)."""

    def __init__(self, model, processor: WhisperProcessor) -> None:
        self.model = unwrap(model).eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.heads = _alignment_heads(self.model)
        self.max_tokens = (
            self.model.config.max_target_positions // 2
        )  # OpenAI's sample_len: half the decoder context
        self.window_seconds = window_seconds(self.model)
        self.device = next(self.model.parameters()).device
        self.dtype = next(self.model.parameters()).dtype

    def prefix(self, language: str | None) -> list[int]:
        tokens = ["<|startoftranscript|>"]
        if is_multilingual(self.model):
            tokens += [language_token(language or "en"), "<|transcribe|>"]
        tokens.append("<|notimestamps|>")
        return self.tokenizer.convert_tokens_to_ids(tokens)

    def word_tokens(self, words: Sequence[str]) -> list[list[int]]:
        """Each word's tokens with its leading space; concatenated they are the transcript's tokens."""
        return [self.tokenizer.encode(" " + word, add_special_tokens=False) for word in words]

    def align(
        self,
        audio: np.ndarray,
        words: Sequence[str],
        language: str | None,
        speech: SpeechRegions | None = None,
    ) -> list[Word]:
        """Start, end and probability of every word, in seconds from the start of `audio`."""
        duration = len(audio) / SAMPLE_RATE
        speech = speech or _all_speech(duration)
        tokens = self.word_tokens(words)
        prefix = self.prefix(language)
        words_per_second = len(words) / max(speech.within(0.0, duration), 1.0)
        aligned: list[Word] = []
        seek = 0.0
        while len(aligned) < len(words):
            seek = max(seek, speech.next_start(seek) - 0.2)
            end = min(seek + self.window_seconds, duration)
            first = len(aligned)
            expected = words_per_second * speech.within(seek, end) * _FEED_SLACK + 2
            fed = _take(tokens[first:], int(expected) if end < duration else len(words), self.max_tokens)
            window = audio[int(seek * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
            final = end >= duration and first + fed == len(words)
            found = self._align_window(
                window,
                prefix,
                tokens[first : first + fed],
                words[first : first + fed],
                speech.shifted(seek, end - seek),
                open_end=not final,
            )
            keep = len(found) if final else _kept(found, end - seek)
            aligned += _placed(found[:keep], seek, speech, aligned[-1].end if aligned else 0.0, duration)
            seek = seek + found[keep - 1].end
        return aligned

    def align_packed(self, clips: Sequence[Clip], language: str | None) -> list[list[Word]]:
        """Word timings of many short clips in one language, as `align` gives them, several clips to a window:
        laid end to end with PACK_GAP_SECONDS of silence between them, aligned as one transcript, and each
        clip's words placed back inside its own span. A clip that fits no window alone goes through `align`."""
        prefix = self.prefix(language)
        tokens = [self.word_tokens(clip.words) for clip in clips]
        aligned: list[list[Word]] = [[] for _ in clips]
        for pack in self._packs(clips, tokens, len(prefix)):
            if len(pack) == 1 and len(clips[pack[0]].audio) / SAMPLE_RATE > self._pack_seconds:
                clip = clips[pack[0]]
                aligned[pack[0]] = self.align(clip.audio, clip.words, language, clip.speech)
                continue
            gap = np.zeros(int(PACK_GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)
            pieces, starts, start, regions = [], [], 0.0, []
            for index in pack:
                clip = clips[index]
                length = len(clip.audio) / SAMPLE_RATE
                pieces += [clip.audio.astype(np.float32, copy=False), gap]
                starts.append(start)
                regions += [(start + a, start + b) for a, b in (clip.speech or _all_speech(length)).regions]
                start += length + PACK_GAP_SECONDS
            window = np.concatenate(pieces[:-1])
            found = self._align_window(
                window,
                prefix,
                [t for index in pack for t in tokens[index]],
                [w for index in pack for w in clips[index].words],
                SpeechRegions(tuple(regions), len(window) / SAMPLE_RATE, 1.0),
            )
            for index, offset in zip(pack, starts, strict=True):
                clip, count = clips[index], len(clips[index].words)
                duration = len(clip.audio) / SAMPLE_RATE
                speech = clip.speech or _all_speech(duration)
                aligned[index] = _placed(found[:count], -offset, speech, 0.0, duration)
                found = found[count:]
        return aligned

    @property
    def _pack_seconds(self) -> float:
        return self.window_seconds - _PACK_MARGIN_SECONDS

    def _packs(
        self, clips: Sequence[Clip], tokens: Sequence[list[list[int]]], prefix: int
    ) -> Iterator[list[int]]:
        """Indices of clips that share a window: in order, while their audio, gaps and tokens fit."""
        pack: list[int] = []
        seconds = used = 0
        for index, clip in enumerate(clips):
            length = len(clip.audio) / SAMPLE_RATE
            count = sum(len(t) for t in tokens[index])
            if pack and (
                seconds + PACK_GAP_SECONDS + length > self._pack_seconds
                or used + count > self.max_tokens - prefix
            ):
                yield pack
                pack, seconds, used = [], 0.0, 0
            seconds += (PACK_GAP_SECONDS if pack else 0.0) + length
            used += count
            pack.append(index)
        if pack:
            yield pack

    @torch.inference_mode()
    def _align_window(
        self,
        window: np.ndarray,
        prefix: list[int],
        word_tokens: list[list[int]],
        words: Sequence[str],
        speech: SpeechRegions,
        open_end: bool = False,
    ) -> list[Word]:
        """The fed words' timings in the window (with `open_end`, of the first n that its speech holds)."""
        text = [t for tokens in word_tokens for t in tokens]
        features = self.processor.feature_extractor(
            window, sampling_rate=SAMPLE_RATE, return_tensors="pt"
        ).input_features.to(self.device, self.dtype)
        ids = torch.tensor([prefix + text], device=self.device)
        encoded = self.model.model.encoder(features)
        # Only eager attention returns weights, and it makes the encoder 2x slower: the decoder alone uses it.
        implementation = self.model.config._attn_implementation
        self.model.set_attn_implementation("eager")
        try:
            out = self.model(encoder_outputs=encoded, decoder_input_ids=ids, output_attentions=True)
        finally:
            self.model.set_attn_implementation(implementation)
        positions = slice(
            len(prefix) - 1, len(prefix) + len(text)
        )  # each predicts the next text token or eot
        probs = out.logits[0, positions].float().softmax(-1)
        token_probs = probs[torch.arange(len(text)), torch.tensor(text)].cpu().numpy()
        frames = max(
            1, min(round(len(window) / SAMPLE_RATE / FRAME_SECONDS), self.model.config.max_source_positions)
        )
        weights = torch.stack([out.cross_attentions[layer][0, head] for layer, head in self.heads])
        weights = weights[:, positions, :frames].float()
        bounds = np.cumsum([0] + [len(t) for t in word_tokens])
        sure = _speech_weights(window, speech, frames)
        repeats = np.array([k > 0 and word_tokens[k] == word_tokens[k - 1] for k in range(len(word_tokens))])
        path = word_path(_word_scores(weights, bounds), sure, open_end=open_end, repeats=repeats)
        placed = [_loud_part(start, end, sure) for start, end in path]
        return [
            Word(word, start * FRAME_SECONDS, end * FRAME_SECONDS, round(float(token_probs[a:b].mean()), 4))
            for word, (start, end), a, b in zip(words, placed, bounds[:-1], bounds[1:], strict=False)
        ]


def _word_scores(weights: torch.Tensor, bounds: np.ndarray) -> np.ndarray:
    """(words, frames) attention scores of the words whose tokens lie between `bounds` (cumulative token
    counts): the heads' weights normalized over those tokens per frame, median-filtered over frames, averaged
    over heads and over each word's tokens."""
    weights = weights[:, : int(bounds[-1])]
    std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
    matrix = _median_filter((weights - mean) / (std + 1e-8), _MEDIAN_WIDTH).mean(0).cpu().numpy()
    return np.stack([matrix[a:b].mean(0) for a, b in itertools.pairwise(bounds)])


def _speech_weights(window: np.ndarray, speech: SpeechRegions, frames: int) -> np.ndarray:
    """How sure it is that each of a window's 20 ms frames is speech: the share of two detectors that say so,
    Silero VAD and loudness above the noise floor of the nearest pause. VAD misses a word now and then and takes
    noise next to speech for speech; loudness takes any noise above the floor for speech; where they disagree,
    attention decides."""
    hop = int(FRAME_SECONDS * SAMPLE_RATE)
    padded = np.pad(window[: frames * hop], (0, max(0, frames * hop - len(window))))
    power = np.mean(padded.reshape(frames, hop).astype(np.float64) ** 2, axis=1)
    level = 10 * np.log10(power + 1e-12)
    heard = np.zeros(frames, dtype=bool)
    for start, end in speech.regions:
        heard[round(start / FRAME_SECONDS) : round(end / FRAME_SECONDS)] = True
    loud = level > np.maximum(_pause_floor(level, heard), _QUIET_DB) + _LOUD_ABOVE_FLOOR_DB
    return (heard.astype(np.float64) + loud) / 2


def _pause_floor(level: np.ndarray, heard: np.ndarray) -> np.ndarray:
    """Each frame's noise floor: the quietest tenth of the nearest pause (a run of frames VAD calls silence),
    so a word next to room noise is measured against that noise and one next to digital silence against
    silence; the window's quietest tenth where VAD hears no pause."""
    pauses = _runs(~heard)
    if not pauses:
        return np.full(len(level), float(np.percentile(level, 10)))
    floors = np.array([np.percentile(level[a:b], 10) for a, b in pauses])
    starts = np.array([a for a, _ in pauses])
    ends = np.array([b for _, b in pauses])
    frame = np.arange(len(level))
    started = np.searchsorted(starts, frame, side="right")  # pauses that start at or before each frame
    before = np.clip(started - 1, 0, len(pauses) - 1)
    following = np.clip(started, 0, len(pauses) - 1)
    to_before = np.where(started > 0, np.maximum(frame - (ends[before] - 1), 0), np.inf)
    to_following = np.where(started < len(pauses), starts[following] - frame, np.inf)
    return np.where(to_before <= to_following, floors[before], floors[following])


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True in `mask`."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _loud_part(start: int, end: int, weights: np.ndarray) -> tuple[int, int]:
    """A word's frames without the quiet ones at either edge (VAD regions run into the pause around speech)."""
    sure = np.flatnonzero(weights[start:end] == 1.0)
    return (start + int(sure[0]), start + int(sure[-1]) + 1) if len(sure) else (start, end)


def _all_speech(duration: float) -> SpeechRegions:
    """What alignment assumes of audio whose speech regions are unknown: speech throughout."""
    return SpeechRegions(((0.0, duration),), duration, 1.0)


def _placed(
    found: Sequence[Word], shift: float, speech: SpeechRegions, after: float, limit: float
) -> list[Word]:
    """Words found in a window placed on their recording's clock (`shift` seconds later), inside [after, limit],
    each shrunk to its largest piece of speech and never overlapping the one before."""
    placed: list[Word] = []
    for word in found:
        start = min(max(word.start + shift, 0.0), limit)
        start, stop = speech.snap(start, min(max(word.end + shift, start), limit))
        start = max(start, placed[-1].end if placed else after)
        placed.append(Word(word.word, round(start, 3), round(max(start, stop), 3), word.probability))
    return placed


def _alignment_heads(model) -> list[tuple[int, int]]:
    """The generation config's alignment heads; without them (random or custom models) every head of the
    decoder's second half, OpenAI's default."""
    heads = getattr(model.generation_config, "alignment_heads", None)
    if heads:
        return [(int(layer), int(head)) for layer, head in heads]
    config = model.config
    return [
        (layer, head)
        for layer in range(config.decoder_layers // 2, config.decoder_layers)
        for head in range(config.decoder_attention_heads)
    ]


def _take(tokens: Sequence[list[int]], words: int, max_tokens: int) -> int:
    """How many of the next words to feed: at most `words`, within the token budget, at least one (a word
    longer than the whole budget cannot be aligned: ValueError)."""
    if len(tokens[0]) > max_tokens:
        raise ValueError(
            f"a word of {len(tokens[0])} tokens is longer than the decoder can align ({max_tokens})"
        )
    count = total = 0
    for word in tokens[: max(1, words)]:
        total += len(word)
        if total > max_tokens and count:
            break
        count += 1
    return count


def _kept(found: Sequence[Word], window_seconds: float) -> int:
    """Words kept from a window that is not the last: never its last fed word, which may have been squeezed in,
    nor any word ending near the window's end; in the window's tail, where words fed beyond its speech crowd
    in, not the word before one the model doubts (teacher-forced probability far below the window's median:
    it hears another word there, so the path has lost count around it); at least one, so alignment moves on.
    (Doubt is not used earlier in a window: its first words are often doubted only for want of context, a
    spelled-out "four" where the model writes "4".)"""
    limit = window_seconds - _KEEP_MARGIN_SECONDS
    tail = window_seconds - _DOUBT_TAIL_SECONDS
    doubted = _DOUBT_SHARE * float(np.median([word.probability for word in found]))
    keep = 0
    for word, after in itertools.pairwise(found):
        if word.end > limit or (word.end > tail and after.probability < doubted):
            break
        keep += 1
    return max(1, keep)


def _median_filter(x: torch.Tensor, width: int) -> torch.Tensor:
    """Median over the last dimension in a sliding window of odd `width`, edges reflected."""
    pad = width // 2
    if x.shape[-1] <= pad:
        return x
    padded = F.pad(x, (pad, pad), mode="reflect")
    return padded.unfold(-1, width, 1).median(-1).values
