"""Generate the embedded demo: two upload sources (English, Serbian) with every kind of awkward input.

Speech comes from espeak-ng when it is installed (the set-up installs it); otherwise from a deterministic
speech-like signal, so the demo and everything downstream still run, only with less realistic audio.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import soxr
import yaml

from whisper_assets.audio.encode import write_audio
from whisper_assets.audio.espeak import espeak, espeak_available
from whisper_assets.demo.long_form import assemble
from whisper_assets.demo.tiny_whisper import build_tiny_whisper
from whisper_assets.demo.typing import generate_typing_recordings
from whisper_assets.sources import review_db

EN_SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her.",
    "She sells sea shells by the sea shore.",
    "A rainbow is a division of white light into many beautiful colors.",
    "Open the window and let the fresh air in.",
    "The meeting starts at nine in the morning.",
    "We need more data to train a better model.",
    "Reading aloud helps you remember new words.",
    "The train to the airport leaves every twenty minutes.",
    "Turn left at the second traffic light.",
    "Coffee tastes better when it is freshly ground.",
    "My favorite season is autumn.",
]
SR_SENTENCES = [
    ("Dobar dan, kako ste danas?", "ana"),
    ("Ljubav je najvažnija stvar na svetu.", "ana"),
    ("Njegova kuća je na kraju ulice.", "ana"),
    ("Džep mu je bio pun sitnog novca.", "marko"),
    ("Đaci su čekali ispred škole.", "marko"),
    ("Sutra ćemo ići na more.", "marko"),
    ("Molim vas, govorite malo sporije.", "jelena"),
    ("Voz polazi u osam sati.", "jelena"),
    ("Čaša vode na stolu je hladna.", "jelena"),
    ("Hvala vam na pomoći.", "ivan"),
    ("Ovo je moja omiljena pesma.", "ivan"),
    ("Vidimo se sutra ujutro.", "ivan"),
]
# The demo's learnable domain: voice commands, every one spoken by every voice. Test and validation get whole
# voices (splits are speaker-disjoint), so the fine-tuned model is judged on voices it never heard.
COMMANDS_SOURCE = "demo-commands"
COMMANDS = [
    "turn on the lights",
    "turn off the lights",
    "open the door",
    "close the door",
    "play some music",
    "stop the music",
    "volume up",
    "volume down",
    "next song",
    "call my mother",
    "what time is it",
    "set an alarm",
]
COMMAND_VOICES = {  # none of the built-in general set's voices
    "alex": "en-us",
    "bea": "en-us+f2",
    "cody": "en-us+m3",
    "dana": "en-gb",
    "eli": "en+f3",
    "fay": "en-gb-x-gbclan",
    "gus": "en-gb-x-gbcwmd",
    "hana": "en-us+m7",
    "ivo": "en+m4",
    "jill": "en-us+m2",
    "kai": "en+f4",
    "lena": "en-us+f5",
}
SR_CYRILLIC = ("Љубав и њежност, џез и ђак.", "Ljubav i njeznost, dzez i djak.")
SPEAKER_VOICES = {"ana": "sr+f2", "marko": "sr", "jelena": "sr+f4", "ivan": "sr+m3"}


def synthesize(text: str, voice: str = "en-us", words_per_minute: int = 150) -> tuple[np.ndarray, int]:
    """Speak `text` with espeak-ng (22.05 kHz mono), or make a speech-like stand-in without it."""
    if espeak_available():
        return espeak(text, voice, words_per_minute)
    return speech_like(text, voice), 16_000


def speech_like(text: str, voice: str = "", rate: int = 16_000) -> np.ndarray:
    """A deterministic voiced signal shaped by the text (one harmonic 'syllable' per character), pitched by
    the voice."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")
    rng = np.random.default_rng(seed)
    pitch = 1 + hashlib.sha256(voice.encode()).digest()[0] / 640 if voice else 1.0
    syllable = int(0.07 * rate)
    t = np.arange(syllable) / rate
    window = np.hanning(syllable)
    parts = [np.zeros(int(0.2 * rate))]
    for char in text:
        if char == " ":
            parts.append(np.zeros(syllable // 2))
            continue
        f0 = (100 + (ord(char) % 32) * 6) * pitch
        tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
        parts.append(window * tone * 0.2 + rng.normal(0, 0.003, syllable))
    parts.append(np.zeros(int(0.2 * rate)))
    return np.concatenate(parts).astype(np.float32)


def _stereo(samples: np.ndarray) -> np.ndarray:
    return np.stack([samples, 0.8 * samples], axis=1)


HR_REVIEWED = [
    "Dobro jutro, kako ste spavali?",
    "Danas je lijep i sunčan dan.",
    "Molim vas jednu kavu s mlijekom.",
    "Vlak za Zagreb kasni deset minuta.",
    "Hvala vam puno na pomoći.",
]
# Unreviewed rows, as people leave them: (what was said, the stored transcript); one transcript is wrong.
HR_DRAFTS = [
    ("Sutra idemo na izlet u planine.", "Sutra idemo na izlet u planine."),
    ("Kupila sam kruh i svježe mlijeko.", "Prodao sam auto prošle godine."),
    ("Knjižnica se zatvara u osam sati.", "Knjižnica se zatvara u osam sati."),
]
DEMO_TYPING_RECORDINGS = 30
REMOTE_RECORDINGS = [
    ("memo-001", "Remember to water the plants on Friday.", "kim"),
    ("memo-002", "The quarterly report is due next Monday.", "kim"),
    ("memo-003", "Call the garage about the winter tyres.", "lee"),
]


def generate_review_db(path: Path) -> Path:
    """A review database as the review app leaves it: reviewed rows, drafts (one mislabelled), and a corrupt
    blob."""
    path.unlink(missing_ok=True)
    review_db.create_database(path)

    def spoken(text: str) -> bytes:
        samples, rate = synthesize(text, "hr")
        return review_db.encode_blob(soxr.resample(samples, rate, 16_000))

    rows = [(text, spoken(text), 1) for text in HR_REVIEWED]
    rows.append(("nije još pregledano", review_db.encode_blob(np.zeros(16_000, np.float32)), 0))
    rows += [(stored, spoken(said), 0) for said, stored in HR_DRAFTS]
    rows.append(("oštećen zapis", b"not zlib at all", 1))
    with review_db.connect(path) as con:
        con.executemany(
            f"INSERT INTO {review_db.TABLE} (transcript, audio_blob, is_reviewed) VALUES (?, ?, ?)", rows
        )
    return path


def generate_remote_recordings(folder: Path) -> Path:
    """What a recordings endpoint serves: <folder>/recordings/ with .webm audio and .json metadata pairs."""
    recordings = folder / "recordings"
    recordings.mkdir(parents=True, exist_ok=True)
    for name, text, author in REMOTE_RECORDINGS:
        write_audio(recordings / f"{name}.webm", *synthesize(text, "en-gb"))
        meta = {
            "transcript": text,
            "language": "en",
            "author": author,
            "license": "CC-BY-4.0",
            "events": [{"t": 0.0, "type": "start"}],
        }
        (recordings / f"{name}.json").write_text(json.dumps(meta), encoding="utf-8")
    return folder


def generate_commands(folder: Path) -> Path:
    """Every command in every voice, at speaking rates of 130-185 words a minute, with a metadata.csv."""
    if folder.exists():
        shutil.rmtree(folder)
    rng = np.random.default_rng(0)
    rows = ["file_name,transcription,speaker_id"]
    for speaker, voice in COMMAND_VOICES.items():
        for i, text in enumerate(COMMANDS):
            samples, rate = synthesize(text, voice, int(rng.integers(130, 186)))
            write_audio(folder / f"{speaker}_{i:02d}.flac", samples, rate)
            rows.append(f"{speaker}_{i:02d}.flac,{text},{speaker}")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def generate_demo(root: Path, recordings_url: str | None = None) -> Path:
    """Write the demo sources and a settings file under root; return the settings file's path.

    With `recordings_url` (a server the caller runs over root/remote), a remote-recordings source is added.
    """
    uploads = root / "uploads"
    commands = generate_commands(uploads / COMMANDS_SOURCE)
    en, sr = uploads / "demo-en", uploads / "demo-sr"
    for folder in (en, sr):
        if folder.exists():
            shutil.rmtree(folder)

    # English: same-name .txt sidecars, a nested folder and a JSONL manifest for the odd formats.
    clips = [synthesize(text) for text in EN_SENTENCES]
    for i, ((samples, rate), text) in enumerate(zip(clips[:8], EN_SENTENCES[:8], strict=True)):
        folder = en if i < 5 else en / "session 2"
        write_audio(folder / f"utt{i:02d}.wav", samples, rate)
        (folder / f"utt{i:02d}.txt").write_text(text + "\n", encoding="utf-8")
    (en / "utt03.txt").write_text("[music] " + EN_SENTENCES[3] + " (laughs)\n", encoding="utf-8")
    samples, rate = clips[8]
    write_audio(en / "stereo 44k.mp3", _stereo(soxr.resample(samples, rate, 44_100)), 44_100)
    (en / "stereo 44k.txt").write_text(EN_SENTENCES[8], encoding="utf-8")
    write_audio(en / "reencoded" / "utt00.mp3", *clips[0])  # content duplicate of utt00.wav
    (en / "reencoded" / "utt00.txt").write_text(EN_SENTENCES[0], encoding="utf-8")
    shutil.copy(en / "utt01.wav", en / "copy of utt01.wav")  # exact duplicate
    (en / "copy of utt01.txt").write_text(EN_SENTENCES[1], encoding="utf-8")
    write_audio(en / "empty transcript.wav", *clips[9])
    (en / "empty transcript.txt").write_text("", encoding="utf-8")
    (en / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)  # corrupt
    (en / "broken.txt").write_text("this file is corrupt", encoding="utf-8")
    samples, rate = clips[2]
    write_audio(en / "blip.wav", samples[int(0.2 * rate) : int(0.5 * rate)], rate)  # 0.3 s
    (en / "blip.txt").write_text("she", encoding="utf-8")
    speech16k = [
        (soxr.resample(samples, rate, 16_000), text)
        for (samples, rate), text in zip(clips, EN_SENTENCES, strict=True)
    ]
    interview = assemble(speech16k * 6, seed=7)  # about 3 minutes, one transcript: cut into segments
    write_audio(en / "long interview.flac", interview.audio, 16_000)
    (en / "long interview.txt").write_text(interview.transcript, encoding="utf-8")
    write_audio(en / "voice memo.webm", *clips[10])
    write_audio(en / "phone call.m4a", *clips[11])
    manifest = [
        {"id": "memo", "audio": "voice memo.webm", "transcript": EN_SENTENCES[10], "speaker": "pat"},
        {"id": "call", "audio": "phone call.m4a", "transcript": EN_SENTENCES[11], "speaker": "sam"},
    ]
    (en / "extra.jsonl").write_text("\n".join(json.dumps(m) for m in manifest) + "\n", encoding="utf-8")
    (en / "notes.pdf").write_bytes(b"%PDF-1.4 not audio")

    # Serbian: metadata.csv with speakers, a Cyrillic transcript, a cp1250 sidecar and an annotation.
    rows = ["file_name,transcription,speaker_id"]
    for i, (text, speaker) in enumerate(SR_SENTENCES):
        samples, rate = synthesize(text, SPEAKER_VOICES[speaker])
        write_audio(sr / f"{speaker}_{i:02d}.flac", samples, rate)
        rows.append(f'{speaker}_{i:02d}.flac,"{text}",{speaker}')
    samples, rate = synthesize(SR_CYRILLIC[1], "sr")
    write_audio(sr / "cyrillic.flac", samples, rate)
    rows.append(f'cyrillic.flac,"{SR_CYRILLIC[0]}",marko')
    (sr / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    samples, rate = synthesize("Čuvajte se hladnoće, šalje vam pozdrav đak.", "sr")
    write_audio(sr / "extra" / "windows_transcript.wav", samples, rate)
    (sr / "extra" / "windows_transcript.txt").write_bytes(
        "Čuvajte se hladnoće, [smeh] šalje vam pozdrav đak.".encode("cp1250")
    )

    base_model = root / "models" / "tiny-random-whisper-en"
    if not (base_model / "config.json").exists():  # no hub here: the demo's base model is built offline
        # English-only, so the server's faster-whisper prompts it as it was trained (tiny_whisper.py).
        corpus = [*COMMANDS, *EN_SENTENCES, *(text for text, _ in SR_SENTENCES)] * 4
        build_tiny_whisper(base_model, corpus, multilingual=False)
    settings = {
        "data_root": ".",
        "default_language": "en",
        "training": {
            "base_model": str(base_model),
            # A tiny random model learns the commands in ~40 s of CPU: a 6 s window (most of the work is the
            # encoder's window), then 20 steps at the full window, so the champion is a general model.
            "max_steps": 450,
            "batch_size": 8,
            "learning_rate": 0.003,
            "warmup_steps": 45,
            "eval_every": 150,
            "save_every": 150,
            "window_seconds": 4.0,
            "full_window_steps": 20,
            "generation_max_tokens": 48,
        },
        "evaluation": {"max_items": 30},
        # The champion knows only the demo's words: its smoke test is a training clip of its own.
        "serving": {
            "smoke_clip": str((commands / "alex_00.flac").relative_to(root)),
            "smoke_transcript": COMMANDS[0],
        },
        # The demo's random model aligns at random: keep its segments anyway, to show the flow end to end.
        "segmentation": {"min_probability": 0.0, "max_short_word_share": 1.0, "max_word_seconds": 30.0},
        "sources": [
            {
                "name": COMMANDS_SOURCE,
                "language": "en",
                "license": "CC0-1.0",
                "provenance": "espeak-ng, generated",
            },
            {
                "name": "demo-en",
                "language": "en",
                "license": "CC0-1.0",
                "provenance": "espeak-ng, generated",
                "karaoke": True,
            },
            {
                "name": "demo-sr",
                "language": "sr",
                "license": "CC0-1.0",
                "provenance": "espeak-ng, generated",
                "transcripts": {"script": "latin"},
                # Speaker ids (labels here, clusters verified against them) and a TTS voice dataset.
                "speakers": {"cluster": True},
                "tts": {"sample_rate": 22_050},
            },
            {
                "name": "demo-reviews",
                "kind": "review_db",
                "path": str(generate_review_db(root / "review.db")),
                "language": "hr",
                "license": "CC0-1.0",
                "provenance": "review app database, generated",
            },
        ],
    }
    if recordings_url:
        generate_remote_recordings(root / "remote")
        # Typing recordings on a second path of the same server: the keystroke model's source.
        keys = root / "remote" / "keys" / "recordings"
        if keys.exists():
            shutil.rmtree(keys)
        generate_typing_recordings(keys, DEMO_TYPING_RECORDINGS, seed=0, words=(1, 1))
        remote = {"kind": "http_recordings", "allow_private_addresses": True, "language": "en"}
        settings["sources"] += [
            {"name": "demo-remote", "base_url": recordings_url, **remote},
            {"name": "demo-keys", "base_url": recordings_url + "/keys", "keystrokes": True, **remote},
        ]
        settings["keystrokes"] = {
            "base_model": str(base_model),
            "micro_batch": 8,
            "effective_batch": 8,
            "max_epochs": 3,
            "eval_every": 4,
            "learning_rate": 0.003,
        }
    config = root / "whisper_assets.yaml"
    config.write_text(yaml.safe_dump(settings, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return config
