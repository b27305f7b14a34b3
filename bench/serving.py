"""Benchmark: 50 concurrent transcription requests against `whisper-assets serve`, and the same audio through
the plain transformers pipeline; with `--overload N`, then N requests at once against the server's admission
control.

    .venv/bin/python bench/serving.py --model ../shared/models/whisper-tiny.en [--workers 2 --beam-size 5]
    .venv/bin/python bench/serving.py --overload 200

The model is registered in a temporary embedded MLflow registry, exported to CTranslate2 int8 and recorded as
`exported_model` does, and made the champion; the server is the real command (`whisper-assets serve`, its own
process). The audio is espeak-ng English sentences joined with pauses into 50 recordings of mixed lengths, 1 s to
5 min (log-uniform, seeded). The 50 requests go at once through the official `openai` client; latency counts
from sending to the whole response (queueing included). Then each recording goes through
`transformers.pipeline("automatic-speech-recognition", chunk_length_s=30)`, one after the other as its plain use
is (decoded samples in: the pipeline reads files only through a system ffmpeg). Reports p50/p95 latency, real-time factors, wall time and WER (normalized, corpus-level) for both.

The throughput run sets `max_waiting` to the request count, so all of them queue. The overload run (default
admission settings) sends N requests at once (the same recordings, cycled) with no client retries, and reports what
an API user sees: p50/p95 latency of the admitted requests, the share refused with 429 (and the Retry-After
they carried), timeouts (504), any other answer, requests left without an answer, and `/health` afterwards.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import openai
import soundfile as sf
import yaml
from finetuned_alignment import SENTENCES

from whisper_assets.asr.metrics import aggregate, score_utterance
from whisper_assets.audio.process import TARGET_RATE, to_mono_16k, write_pcm16
from whisper_assets.demo.data import synthesize
from whisper_assets.export.ctranslate import export_ctranslate2
from whisper_assets.settings import load_settings
from whisper_assets.tracking.tracker import Tracker

SHORT = ["Good morning.", "Thank you.", "Yes, please."]
VOICES = ("en-us", "en", "en-us+m3", "en+f2")


def recordings(folder: Path, count: int, seed: int) -> list[dict]:
    """`count` recordings of 1 s to 5 min (log-uniform; the shortest and longest always present)."""
    rng = random.Random(seed)
    targets = [1.0, 300.0] + [math.exp(rng.uniform(0, math.log(300))) for _ in range(count - 2)]
    spoken = [
        (text, to_mono_16k(*synthesize(text, VOICES[k % len(VOICES)])))
        for k, text in enumerate(SENTENCES + SHORT)
    ]
    sentences, short = spoken[: len(SENTENCES)], spoken[len(SENTENCES) :]
    items = []
    for k, target in enumerate(targets):
        texts, parts, length = [], [], 0.0
        pool = short if target < 2.0 else sentences
        while not parts or length + len(pool[len(parts) % len(pool)][1]) / TARGET_RATE < target:
            text, audio = pool[(k + len(parts)) % len(pool)]
            pause = np.zeros(int(rng.uniform(0.3, 1.0) * TARGET_RATE), np.float32)
            texts.append(text)
            parts += [audio, pause]
            length += (len(audio) + len(pause)) / TARGET_RATE
        audio = np.concatenate(parts)
        path = folder / f"rec{k:02d}.wav"
        write_pcm16(path, audio)
        items.append({"path": path, "text": " ".join(texts), "duration": len(audio) / TARGET_RATE})
    return items


def register_champion(config: Path, model: Path, workdir: Path) -> None:
    """Register the model, export it and record the export (as `exported_model` does), make it the champion."""
    settings = load_settings(config)
    tracker = Tracker.from_settings(settings.mlflow, settings.layout.mlflow_root)
    run_id = tracker.start_run("bench", {})
    version = tracker.register(run_id, tracker.log_artifacts(run_id, model, "model"))
    export = export_ctranslate2(model, workdir / "export", settings.serving.quantization)
    tracker.record_export(version, run_id, export, settings.serving.quantization)
    tracker.set_champion(version)


def start_server(config: Path, port: int) -> subprocess.Popen:
    command = [str(Path(sys.executable).with_name("whisper-assets")), "serve", "--config", str(config)]
    server = subprocess.Popen([*command, "--port", str(port)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").json().get("status") == "ok":
                return server
        except (httpx.HTTPError, json.JSONDecodeError):
            pass
        time.sleep(0.5)
    server.kill()
    raise SystemExit("the server did not come up within 10 minutes")


def serve_all(port: int, items: list[dict]) -> tuple[list[dict], float]:
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", max_retries=0, timeout=3600
    )

    def one(item: dict) -> dict:
        started = time.perf_counter()
        with item["path"].open("rb") as audio:
            text = client.audio.transcriptions.create(model="whisper-1", file=audio, language="en").text
        return {**item, "hypothesis": text, "seconds": time.perf_counter() - started}

    one(items[0])  # warm-up
    started = time.perf_counter()
    with ThreadPoolExecutor(len(items)) as pool:
        results = list(pool.map(one, items))
    return results, time.perf_counter() - started


def overload(port: int, items: list[dict], count: int) -> dict:
    """`count` requests at once, no retries: what admission control answers, and the server's health after."""
    url = f"http://127.0.0.1:{port}"

    def one(k: int) -> dict:
        item = items[k % len(items)]
        started = time.perf_counter()
        try:
            response = httpx.post(
                f"{url}/v1/audio/transcriptions",
                data={"model": "whisper-1", "language": "en"},
                files={"file": (item["path"].name, item["path"].read_bytes())},
                timeout=3600,
            )
        except httpx.HTTPError as exc:
            return {"status": None, "error": repr(exc), "seconds": time.perf_counter() - started}
        return {
            "status": response.status_code,
            "retry_after": response.headers.get("retry-after"),
            "seconds": time.perf_counter() - started,
        }

    started = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        answers = list(pool.map(one, range(count)))
    wall = time.perf_counter() - started
    admitted = sorted(a["seconds"] for a in answers if a["status"] == 200)
    refused = [a for a in answers if a["status"] == 429]
    health = httpx.get(f"{url}/health").json()
    return {
        "requests": count,
        "admitted": len(admitted),
        "admitted_p50_s": round(float(np.percentile(admitted, 50)), 2) if admitted else None,
        "admitted_p95_s": round(float(np.percentile(admitted, 95)), 2) if admitted else None,
        "refused_429_share": round(len(refused) / count, 3),
        "refused_p95_s": round(float(np.percentile([a["seconds"] for a in refused], 95)), 3)
        if refused
        else None,
        "retry_after_s": sorted({int(a["retry_after"]) for a in refused if a["retry_after"]}),
        "timed_out_504": sum(a["status"] == 504 for a in answers),
        "other_statuses": sorted({a["status"] for a in answers if a["status"] not in (200, 429, 504, None)}),
        "unanswered": sum(a["status"] is None for a in answers),
        "wall_s": round(wall, 1),
        "health_after": {"status": health["status"], "queue": health["queue"]},
    }


def pipeline_all(model: Path, items: list[dict]) -> tuple[list[dict], float]:
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=str(model), chunk_length_s=30, device="cpu")

    def samples(item: dict) -> dict:  # decoded here: the pipeline reads files only through a system ffmpeg
        return {"raw": sf.read(item["path"], dtype="float32")[0], "sampling_rate": TARGET_RATE}

    asr(samples(items[0]))  # warm-up
    results, started = [], time.perf_counter()
    for item in items:
        began = time.perf_counter()
        text = asr(samples(item))["text"]
        results.append({**item, "hypothesis": text, "seconds": time.perf_counter() - began})
    return results, time.perf_counter() - started


def summary(results: list[dict], wall: float) -> dict:
    latencies = sorted(r["seconds"] for r in results)
    audio = sum(r["duration"] for r in results)
    scored = aggregate(score_utterance(r["text"], r["hypothesis"], "en") for r in results)
    return {
        "p50_latency_s": round(float(np.percentile(latencies, 50)), 2),
        "p95_latency_s": round(float(np.percentile(latencies, 95)), 2),
        "max_latency_s": round(latencies[-1], 2),
        "mean_request_rtf": round(float(np.mean([r["seconds"] / r["duration"] for r in results])), 4),
        "wall_s": round(wall, 1),
        "throughput_rtf": round(wall / audio, 4),
        "wer_normalized": scored["wer_normalized"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=Path("../shared/models/whisper-tiny.en"))
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cpu-threads", type=int, default=0)
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument(
        "--overload",
        type=int,
        default=0,
        help="instead, N requests at once against the default admission settings (serving.max_waiting etc.)",
    )
    args = parser.parse_args()
    if not args.model.exists():
        raise SystemExit(f"needs {args.model} (the shared folder beside the checkout)")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        items = recordings(workdir, args.requests, args.seed)
        audio = sum(i["duration"] for i in items)
        print(
            f"{len(items)} recordings, {audio / 60:.1f} min of audio ({min(i['duration'] for i in items):.1f} s "
            f"to {max(i['duration'] for i in items):.1f} s); {os.cpu_count()} CPU cores"
        )
        serving = {"workers": args.workers, "cpu_threads": args.cpu_threads, "beam_size": args.beam_size}
        if not args.overload:  # the throughput run queues every request
            serving["max_waiting"] = args.requests
        config = workdir / "whisper_assets.yaml"
        config.write_text(yaml.safe_dump({"data_root": str(workdir / "data"), "serving": serving}))
        register_champion(config, args.model.resolve(), workdir)
        server = start_server(config, args.port)
        try:
            if args.overload:
                report = {"settings": serving, "overload": overload(args.port, items, args.overload)}
            else:
                results, wall = serve_all(args.port, items)
        finally:
            server.terminate()
            server.wait(60)
        if args.overload:
            print(json.dumps(report, indent=2))
            return
        report = {
            "settings": serving,
            "server": summary(results, wall),
            "audio_minutes": round(audio / 60, 1),
        }
        print(json.dumps(report["server"]), flush=True)
        if not args.skip_pipeline:
            results, wall = pipeline_all(args.model, items)
            report["pipeline"] = summary(results, wall)
            report["speedup_wall"] = round(report["pipeline"]["wall_s"] / report["server"]["wall_s"], 2)
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
