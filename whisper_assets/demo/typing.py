"""Generated typing recordings in the recordings endpoint's format: `<name>.webm` (Opus) + `<name>.json`.

No public keystroke recordings are reachable here, so this writes realistic ones: a typist types words in
bursts with pauses, presses overlap (rollover), Shift is held over capitals (long holds produce the browser's
auto-repeat keydowns), and typos are corrected with Backspace. Each simulated keyboard gives every key an
acoustic signature: the keyboard's shared body modes, shifted by the key's place on the board, so keys on one
keyboard are similar but distinguishable; a press (a sharp strike and a bottom-out) sounds unlike a release
(quieter and brighter). Each simulated microphone has its own frequency response and gain, and the room adds
noise and mains hum. The timeline is what a browser page records: `KeyboardEvent` type, code, key and
`timeStamp` in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whisper_assets.audio.encode import write_audio

RATE = 16_000
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_WORDS = (
    "the quick brown fox jumps over lazy dog and then runs away from home to find some food near old river "
    "water light house green table chair paper pencil music window garden yellow purple orange summer winter "
    "market coffee bread cheese apple lemon mango zebra quiet jazz vivid sky box wax kept join fix"
).split()
KEYBOARDS = ("mech-blue", "mech-brown", "laptop-scissor", "membrane-office")
MICROPHONES = ("laptop-array", "usb-condenser", "headset-boom")


@dataclass(frozen=True)
class Keyboard:
    """A keyboard's sound: body modes shared by all keys, shifted per key by its place on the board."""

    name: str
    modes: tuple[float, ...]  # Hz
    decay: float  # seconds
    loudness: float
    seed: int

    @classmethod
    def named(cls, name: str) -> Keyboard:
        rng = np.random.default_rng(_stable_seed(name))
        modes = tuple(sorted(rng.uniform(900, 5_500, size=3)))
        return cls(
            name,
            modes,
            float(rng.uniform(0.012, 0.03)),
            float(rng.uniform(0.35, 0.7)),
            int(rng.integers(1 << 30)),
        )

    def key_modes(self, code: str) -> np.ndarray:
        """The key's resonances: the body modes, shifted by its row and column (plus a fixed per-key jitter)."""
        row, column = _position(code)
        jitter = np.random.default_rng([self.seed, *code.encode()]).uniform(-0.04, 0.04, size=len(self.modes))
        shift = 1 + 0.07 * (row - 1) + 0.025 * (column - 4.5) + jitter
        return np.asarray(self.modes) * shift

    def sound(self, code: str, down: bool, rng: np.random.Generator) -> np.ndarray:
        """One press (strike + bottom-out) or release (a quieter, brighter, shorter click)."""
        modes = self.key_modes(code) * (1.0 if down else 1.35) * rng.uniform(0.99, 1.01)
        decay = self.decay * (1.0 if down else 0.55) * (1.8 if code == "Space" else 1.0)
        length = int(0.08 * RATE)
        t = np.arange(length) / RATE
        weights = np.random.default_rng([self.seed, 7, *code.encode()]).uniform(0.4, 1.0, size=len(modes))
        body = sum(
            w * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
            for w, f in zip(weights, modes, strict=True)
        )
        click = body * np.exp(-t / decay)
        burst = int(0.003 * RATE)
        click[:burst] += rng.normal(0, 0.8, burst) * np.linspace(1, 0, burst)
        if down:  # the key bottoms out a few ms after the strike
            delay = int(rng.uniform(0.006, 0.012) * RATE)
            click[delay:] += 0.6 * click[: length - delay]
        gain = self.loudness * (1.0 if down else 0.45) * rng.uniform(0.8, 1.2)
        return (gain * click / np.max(np.abs(click))).astype(np.float32)


@dataclass(frozen=True)
class Microphone:
    name: str
    low_hz: float
    high_hz: float
    gain: float
    noise_db: float  # room noise level relative to full scale

    @classmethod
    def named(cls, name: str) -> Microphone:
        rng = np.random.default_rng(_stable_seed(name))
        return cls(
            name,
            float(rng.uniform(60, 250)),
            float(rng.uniform(4_000, 7_500)),
            float(rng.uniform(0.6, 1.0)),
            float(rng.uniform(-52, -40)),
        )

    def record(self, signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The microphone's band and gain applied to the room: the signal plus pink-ish noise and mains hum."""
        noise = np.cumsum(rng.normal(0, 1, len(signal)))
        noise -= np.convolve(noise, np.ones(64) / 64, mode="same")  # drift removed: a pink-ish hiss
        noise *= 10 ** (self.noise_db / 20) / (np.std(noise) + 1e-9)
        hum = 10 ** ((self.noise_db - 6) / 20) * np.sin(
            2 * np.pi * rng.choice([50, 60]) * np.arange(len(signal)) / RATE
        )
        spectrum = np.fft.rfft(signal + noise + hum)
        freqs = np.fft.rfftfreq(len(signal), 1 / RATE)
        response = (
            1
            / np.sqrt(1 + (self.low_hz / np.maximum(freqs, 1)) ** 4)
            / np.sqrt(1 + (freqs / self.high_hz) ** 8)
        )
        return (self.gain * np.fft.irfft(spectrum * response, n=len(signal))).astype(np.float32)


def typed_keys(text: str, rng: np.random.Generator) -> list[tuple[str, str, bool]]:
    """(code, key, shifted) per keystroke; a typo now and then, corrected with Backspace."""
    keys = []
    for char in text:
        if char.isalpha() and rng.random() < 0.03:
            wrong = rng.choice(list("asdfjkl"))
            keys += [(f"Key{wrong.upper()}", wrong, False), ("Backspace", "Backspace", False)]
        if char == " ":
            keys.append(("Space", " ", False))
        elif char == ".":
            keys.append(("Period", ".", False))
        elif char == ",":
            keys.append(("Comma", ",", False))
        else:
            keys.append((f"Key{char.upper()}", char, char.isupper()))
    return keys


def timeline(text: str, rng: np.random.Generator) -> list[dict]:
    """Browser key events for typing `text`: bursts, pauses after words, rollover, Shift held over capitals."""
    events: list[dict] = []
    now = rng.uniform(0.3, 0.6)
    interval = rng.uniform(0.12, 0.22)  # this typist's pace
    shift_up_at = None
    released_at: dict[str, float] = {}  # a key is pressed again only after its release ("ee", "zz")

    def press_time(code: str, earliest: float) -> float:
        return max(earliest, released_at.get(code, -1.0) + rng.uniform(0.02, 0.05))

    for code, key, shifted in typed_keys(text, rng):
        if shifted and shift_up_at is None:
            now = press_time("ShiftLeft", now)
            events.append({"type": "keydown", "code": "ShiftLeft", "key": "Shift", "t": now})
            now += rng.uniform(0.06, 0.12)
        if not shifted and shift_up_at is not None:
            events.append({"type": "keyup", "code": "ShiftLeft", "key": "Shift", "t": shift_up_at})
            released_at["ShiftLeft"], shift_up_at = shift_up_at, None
            now += rng.uniform(0.03, 0.08)
        dwell = rng.uniform(0.06, 0.13)
        now = press_time(code, now)
        released_at[code] = now + dwell
        events.append({"type": "keydown", "code": code, "key": key, "t": now})
        events.append({"type": "keyup", "code": code, "key": key, "t": now + dwell})
        if shifted:
            shift_up_at = now + dwell + rng.uniform(0.02, 0.07)
        # the next press: often before this release (rollover), and after a word often a pause
        now += max(0.035, rng.lognormal(np.log(interval), 0.3))
        if code == "Space" and rng.random() < 0.35:
            now += rng.uniform(0.3, 0.9)
        if shifted:
            now = max(now, shift_up_at - 0.02) if rng.random() < 0.5 else now
    if shift_up_at is not None:
        events.append({"type": "keyup", "code": "ShiftLeft", "key": "Shift", "t": shift_up_at})
    return _with_auto_repeat(sorted(events, key=lambda e: e["t"]))


def _with_auto_repeat(events: list[dict]) -> list[dict]:
    """A key held past 500 ms repeats its keydown every 33 ms, as browsers report it (`repeat: true`)."""
    out = []
    down_at: dict[str, float] = {}
    for event in events:
        if event["type"] == "keydown":
            down_at[event["code"]] = event["t"]
        elif event["code"] in down_at:
            start = down_at.pop(event["code"])
            repeat = start + 0.5
            while repeat < event["t"]:
                out.append({**event, "type": "keydown", "t": repeat, "repeat": True})
                repeat += 0.033
        out.append(event)
    return sorted(out, key=lambda e: e["t"])


def write_typing_recording(
    stem: Path, text: str, keyboard: Keyboard, microphone: Microphone, rng: np.random.Generator
) -> dict:
    """Write `<stem>.webm` and `<stem>.json`; return the timeline document."""
    events = timeline(text, rng)
    duration = max(e["t"] for e in events) + rng.uniform(0.3, 0.6)
    signal = np.zeros(int(duration * RATE) + int(0.1 * RATE), np.float32)
    for event in events:
        if event.get("repeat"):
            continue  # auto-repeat is the browser's; the key made no new sound
        sound = keyboard.sound(event["code"], event["type"] == "keydown", rng)
        start = int(event["t"] * RATE)
        signal[start : start + len(sound)] += sound[: len(signal) - start]
    audio = microphone.record(signal, rng)[: int(duration * RATE)]
    audio /= max(1.0, float(np.max(np.abs(audio))) / 0.95)
    stem.parent.mkdir(parents=True, exist_ok=True)
    write_audio(stem.with_suffix(".webm"), audio, RATE)
    document = {
        "keyboard": keyboard.name,
        "microphone": microphone.name,
        "text": text,
        "events": [
            {
                "type": e["type"],
                "code": e["code"],
                "key": e["key"],
                "timeStamp": round(e["t"] * 1000, 1),
                "repeat": bool(e.get("repeat", False)),
            }
            for e in events
        ],
    }
    stem.with_suffix(".json").write_text(json.dumps(document), encoding="utf-8")
    return document


def random_text(rng: np.random.Generator, words: tuple[int, int]) -> str:
    chosen = [str(w) for w in rng.choice(_WORDS, size=int(rng.integers(words[0], words[1] + 1)))]
    if rng.random() < 0.3:
        chosen[0] = chosen[0].capitalize()
    return " ".join(chosen) + ("." if rng.random() < 0.2 else "")


def generate_typing_recordings(
    folder: Path,
    count: int,
    seed: int = 0,
    keyboards: tuple[str, ...] = KEYBOARDS[:3],
    microphones: tuple[str, ...] = MICROPHONES,
    words: tuple[int, int] = (1, 2),
    prefix: str = "typing",
) -> list[Path]:
    """`count` recordings into folder, each on a random keyboard and microphone of those given."""
    rng = np.random.default_rng(seed)
    boards = [Keyboard.named(k) for k in keyboards]
    mics = [Microphone.named(m) for m in microphones]
    stems = []
    for i in range(count):
        stem = folder / f"{prefix}-{seed}-{i:05d}"
        board, mic = boards[int(rng.integers(len(boards)))], mics[int(rng.integers(len(mics)))]
        write_typing_recording(stem, random_text(rng, words), board, mic, rng)
        stems.append(stem)
    return stems


def _position(code: str) -> tuple[float, float]:
    """Row and column of a key on a QWERTY board (approximate for the non-letter keys)."""
    if code.startswith("Key"):
        letter = code[3:].lower()
        for row, keys in enumerate(_ROWS):
            if letter in keys:
                return row, keys.index(letter) + 0.5 * row
    return {
        "Space": (3.0, 4.5),
        "ShiftLeft": (2.0, -1.5),
        "ShiftRight": (2.0, 11.0),
        "Backspace": (-1.0, 12.0),
        "Period": (2.0, 9.0),
        "Comma": (2.0, 8.0),
    }.get(code, (1.0, 4.5))


def _stable_seed(name: str) -> int:
    return int.from_bytes(hashlib.blake2s(name.encode()).digest()[:4], "little")
