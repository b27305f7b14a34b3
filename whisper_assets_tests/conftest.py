"""Shared fixtures: generated audio and settings files in temporary folders (no network, no ../shared)."""

from __future__ import annotations

import os

# No test may reach the hub: a hub id in a test's settings fails at once instead of after network retries.
# Set before anything imports huggingface_hub, which reads it once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from whisper_assets.audio.encode import write_audio
from whisper_assets.demo.data import speech_like
from whisper_assets.settings import Settings, load_settings
from whisper_assets_tests.helpers import CHROMEDRIVER, CHROMIUM

RATE = 16_000


@pytest.fixture
def write_clip() -> Callable[..., Path]:
    """Write a speech-like clip for `text` as any format; stereo and other rates on request."""

    def write(
        path: Path, text: str, rate: int = RATE, stereo: bool = False, seconds: float | None = None
    ) -> Path:
        samples = speech_like(text)
        if seconds is not None:
            reps = int(np.ceil(seconds * RATE / len(samples)))
            samples = np.tile(samples, reps)[: int(seconds * RATE)]
        if rate != RATE:
            import soxr

            samples = soxr.resample(samples, RATE, rate)
        if stereo:
            samples = np.stack([samples, 0.5 * samples], axis=1)
        write_audio(path, samples, rate)
        return path

    return write


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Write a settings file under tmp_path (data root = tmp_path) and load it."""

    def make(**overrides) -> Settings:
        config = tmp_path / "whisper_assets.yaml"
        config.write_text(
            yaml.safe_dump({"data_root": ".", **overrides}, allow_unicode=True), encoding="utf-8"
        )
        return load_settings(config)

    return make


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.set_capability(
        "goog:loggingPrefs", {"browser": "ALL"}
    )  # console messages, for get_log("browser")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()
