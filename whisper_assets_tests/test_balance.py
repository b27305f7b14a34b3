"""The dataset balance report: hours, concentration, SNR cache and the recommendations it makes."""

from pathlib import Path

import numpy as np
import pytest

from whisper_assets.audio.process import write_pcm16
from whisper_assets.curation import balance
from whisper_assets.curation.balance import (
    BalanceSettings,
    balance_page,
    balance_report,
    gini,
    measure_snr,
    utterances,
)
from whisper_assets.demo.data import speech_like
from whisper_assets_tests.helpers import ARTIFACTS, NEEDS_BROWSER


def item(folder, name, text, *, split, language, speaker, source="uploads", noise=0.0, seconds=None):
    samples = speech_like(text)
    if seconds:
        samples = np.pad(samples, (0, int(seconds * 16_000) - samples.size))
    samples = samples + np.random.default_rng(len(name)).normal(0, noise, samples.size) if noise else samples
    path = folder / f"{name}.wav"
    write_pcm16(path, samples.astype(np.float32))
    return {
        "split": split,
        "id": name,
        "audio": str(path),
        "transcript": text,
        "duration": samples.size / 16_000,
        "language": language,
        "speaker": speaker,
        "source": source,
    }


@pytest.fixture
def manifests(tmp_path):
    rows = [
        item(tmp_path, "hr-ana-1", "dobar dan svima ovdje", split="train", language="hr", speaker="ana"),
        item(tmp_path, "hr-ana-2", "kako ste danas prijatelji", split="train", language="hr", speaker="ana"),
        item(tmp_path, "hr-ana-3", "idemo na more sutra ujutro", split="train", language="hr", speaker="ana"),
        item(tmp_path, "hr-ivo-1", "laku noć", split="train", language="hr", speaker="ivo"),
        item(tmp_path, "hr-mia-1", "vidimo se uskoro", split="validation", language="hr", speaker="mia"),
        item(tmp_path, "sr-1", "добро јутро свима", split="train", language="sr", speaker="zoran"),
        item(tmp_path, "sr-2", "хвала вам пуно", split="train", language="sr", speaker="mila"),
        item(tmp_path, "sr-3", "до виђења", split="validation", language="sr", speaker="lena"),
        item(tmp_path, "bs-1", "selam alejkum", split="train", language="bs", speaker="emir"),
        item(tmp_path, "bs-2", "hvala lijepa", split="train", language="bs", speaker="amra"),
        item(tmp_path, "bs-slow", "da", split="test", language="bs", speaker="edin", seconds=3.0),
        *[
            item(
                tmp_path,
                f"noisy-{i}",
                f"noisy clip {i}",
                split="test",
                language="hr",
                speaker=f"n{i}",
                source="street",
                noise=0.3,
            )
            for i in range(3)
        ],
    ]
    by_split = {}
    for row in rows:
        by_split.setdefault(row.pop("split"), []).append(row)
    return by_split


def test_report_counts_hours_and_recommends_what_to_fix(tmp_path, manifests):
    audio = [i["audio"] for items in manifests.values() for i in items]
    rows = utterances(manifests, measure_snr(audio, tmp_path / "tables", workers=1))
    report = balance_report(rows, BalanceSettings())

    total = sum(i["duration"] for items in manifests.values() for i in items) / 3600
    assert sum(report["hours_by_split"].values()) == pytest.approx(total, abs=1e-3)
    assert report["hours_by_script"]["cyrillic"].keys() == {"train", "validation"}
    hr = report["speaker_concentration"]["hr"]
    ana_share = sum(i["duration"] for i in manifests["train"] if i["speaker"] == "ana") / sum(
        i["duration"] for i in manifests["train"] if i["language"] == "hr"
    )
    assert hr["speakers"] == 2 and hr["top_speakers"]["ana"] == pytest.approx(ana_share, abs=1e-3)
    advice = report["recommendations"]
    assert f"speaker ana is {ana_share:.0%} of `hr` training hours" in advice
    assert "validation has no `bs`" in advice
    assert "test has no `sr`" in advice and "test has no `bs`" not in advice
    assert any(a.startswith("`sr` is Cyrillic only") for a in advice)
    assert any(a.startswith("`bs` is Latin only") for a in advice)
    assert not any("`hr` is" in a for a in advice)  # Croatian is written in Latin only: nothing to add
    assert any("`street` recordings are below 10 dB SNR" in a for a in advice)
    assert not any("`uploads` recordings are below" in a for a in advice)
    assert any("slower than 2 characters per second" in a and "bs-slow" in a for a in advice)


def test_gini_is_zero_when_even_and_grows_with_concentration():
    assert gini([2.0, 2.0, 2.0]) == 0.0
    assert gini([0.0, 0.0, 0.0, 1.0]) == pytest.approx(0.75)
    assert gini([1.0, 3.0]) < gini([1.0, 9.0])


def test_snr_is_measured_once_per_file_version(tmp_path, manifests, monkeypatch):
    audio = [i["audio"] for items in manifests.values() for i in items]
    first = measure_snr(audio, tmp_path / "tables", workers=1)
    measured = []
    monkeypatch.setattr(balance, "_snr", lambda path: measured.append(path) or 0.0)
    assert measure_snr(audio, tmp_path / "tables", workers=1) == first and measured == []
    changed = manifests["train"][0]["audio"]
    write_pcm16(Path(changed), np.zeros(16_000, dtype=np.float32))
    again = measure_snr(audio, tmp_path / "tables", workers=1)
    assert measured == [changed] and again[changed] == 0.0
    (tmp_path / "gone.wav").unlink(missing_ok=True)
    assert measure_snr([str(tmp_path / "gone.wav")], tmp_path / "tables", workers=1) == {
        str(tmp_path / "gone.wav"): None
    }


@pytest.mark.slow
@NEEDS_BROWSER
def test_the_balance_page_opens_in_chromium(tmp_path, manifests, browser):
    from selenium.webdriver.common.by import By

    audio = [i["audio"] for items in manifests.values() for i in items]
    rows = utterances(manifests, measure_snr(audio, tmp_path / "tables", workers=1))
    page = tmp_path / "dataset_balance.html"
    page.write_text(balance_page(balance_report(rows, BalanceSettings()), rows), encoding="utf-8")
    browser.get(page.as_uri())
    sections = {s.get_attribute("id") for s in browser.find_elements(By.TAG_NAME, "section")}
    assert sections == {
        "recommendations",
        "hours-per-split",
        *(f"hours-per-{d}" for d in ("language", "script", "source", "speaker")),
        "speaker-concentration--training-hours",
        "distributions",
    }
    advice = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#recommendations li")]
    assert "validation has no `bs`" in advice
    charts = browser.find_elements(By.CSS_SELECTOR, "section svg")
    assert len(charts) == 7 and all(c.size["width"] > 100 for c in charts)
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "dataset_balance.png"))
    assert (ARTIFACTS / "dataset_balance.png").stat().st_size > 10_000


def test_unlabelled_hours_are_not_a_speaker():
    rows = [
        balance.Utterance("train", f"u{i}", "en", "latin", "up", balance.NO_SPEAKER, 0.01, 36.0, 14.0, 30.0)
        for i in range(3)
    ] + [balance.Utterance("train", "l", "en", "latin", "up", "ana", 0.001, 3.6, 14.0, 30.0)]
    found = balance.concentration(rows)["en"]
    assert (
        found["speakers"] == 1 and found["unlabeled_hours"] == 0.03 and found["top_speakers"] == {"ana": 1.0}
    )
    advice = balance.recommendations(rows, BalanceSettings())
    assert not any("(no speaker label)" in a for a in advice)
    assert any(a.startswith("97% of the hours have no speaker label") for a in advice)
