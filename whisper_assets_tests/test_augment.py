"""Training-time augmentation: reproducible under a seed, different each epoch, and resumable to the same weights
(extra `augment`; skipped without audiomentations)."""

import importlib.util

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from whisper_assets.demo.data import speech_like
from whisper_assets.training.augment import Augmenter, reverberate
from whisper_assets.training.options import TrainingOptions
from whisper_assets.training.trainer import train
from whisper_assets_tests.training_fixtures import make_items, make_tiny_model

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("audiomentations") is None, reason="the `augment` extra is not installed"
)
AUDIO = speech_like("augment me please")


def augmenter(**overrides) -> Augmenter:
    return Augmenter(TrainingOptions(**({"augment_probability": 1.0} | overrides)))


def test_an_augmented_sample_is_the_same_for_the_same_seed_ids_and_epoch():
    first = augmenter()(AUDIO, ("a",), 0)
    assert first is not None and not np.array_equal(first, AUDIO[: len(first)])
    assert np.array_equal(augmenter()(AUDIO, ("a",), 0), first)
    others = [
        augmenter()(AUDIO, ("a",), 1),
        augmenter()(AUDIO, ("b",), 0),
        augmenter(seed=7)(AUDIO, ("a",), 0),
    ]
    assert all(o is not None and not (len(o) == len(first) and np.allclose(o, first)) for o in others)
    assert np.abs(first).max() <= 1.0 and first.dtype == np.float32


def test_the_probability_is_the_share_of_samples_augmented_and_leaves_global_generators_alone():
    half = augmenter(augment_probability=0.5)
    state = np.random.get_state()[1].copy()
    drawn = [half(AUDIO, (f"item-{k}",), 0) is not None for k in range(300)]
    assert 0.4 < sum(drawn) / len(drawn) < 0.6
    assert np.array_equal(np.random.get_state()[1], state)
    assert augmenter(augment_probability=0.0)(AUDIO, ("a",), 0) is None


def test_reverberation_keeps_length_and_peak_and_adds_a_decaying_tail():
    click = np.zeros(16_000, dtype=np.float32)
    click[100] = 0.5
    wet = reverberate(click, 0.5, np.random.default_rng(0))
    assert len(wet) == len(click) and np.isclose(np.abs(wet).max(), 0.5)
    early, late = (float(np.sum(wet[a:b] ** 2)) for a, b in ((101, 1700), (6500, 8100)))
    assert early > 10 * late > 0


def test_augmented_training_resumes_to_the_same_weights(tmp_path):
    model_dir, items = make_tiny_model(tmp_path / "model"), make_items(tmp_path / "audio")
    opts = {
        "base_model": str(model_dir),
        "batch_size": 3,
        "learning_rate": 3e-3,
        "scheduler": "constant",
        "eval_every": 100,
        "save_every": 2,
        "window_seconds": 4.0,
        "full_window_steps": 0,  # the 2-step run must be the 6-step run's first steps
        "augment_probability": 0.7,
    }
    whole = train(
        TrainingOptions(**opts, max_steps=6), items, [], tmp_path / "a", tmp_path / "c", tmp_path / "a.log"
    )
    train(TrainingOptions(**opts, max_steps=2), items, [], tmp_path / "b", tmp_path / "c", tmp_path / "b.log")
    resumed = train(
        TrainingOptions(**opts, max_steps=6), items, [], tmp_path / "b", tmp_path / "c", tmp_path / "b.log"
    )
    assert resumed.resumed_from_step == 2
    clean = train(
        TrainingOptions(**opts | {"augment_probability": 0.0}, max_steps=6),
        items,
        [],
        tmp_path / "d",
        tmp_path / "c",
        tmp_path / "d.log",
    )
    want, got = (load_file(str(r.model_dir / "model.safetensors")) for r in (whole, resumed))
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-5)
    assert [h["loss"] for h in whole.history if h["stage"] == "train"] != [
        h["loss"] for h in clean.history if h["stage"] == "train"
    ]
