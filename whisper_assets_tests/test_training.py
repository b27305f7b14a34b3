import itertools
import json
import logging
import math
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import WhisperForConditionalGeneration, WhisperProcessor

from whisper_assets.asr.audio import PACK_GAP_SECONDS
from whisper_assets.asr.model import load_base
from whisper_assets.asr.transcribe import transcribe
from whisper_assets.training import checkpoints as checkpoints_module
from whisper_assets.training import trainer as trainer_module
from whisper_assets.training.checkpoints import MARKER, Checkpoints
from whisper_assets.training.data import (
    IGNORED_LABEL,
    FeatureCache,
    ResumableBatchSampler,
    collate,
    fitting_labels,
    label_ids,
    to_samples,
)
from whisper_assets.training.distillation import kl_to_teacher
from whisper_assets.training.model import apply_method, restore_encoder_window, trim_encoder_window
from whisper_assets.training.options import TrainingOptions
from whisper_assets.training.trainer import train
from whisper_assets_tests.training_fixtures import make_items, make_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return make_tiny_model(root / "model"), make_items(root / "audio")


def options(model_dir, **overrides):
    base = {
        "base_model": str(model_dir),
        "max_steps": 6,
        "batch_size": 3,
        "learning_rate": 3e-3,
        "eval_every": 3,
        "save_every": 2,
        "window_seconds": 4.0,
        "full_window_steps": 0,  # a specialist unless a test says otherwise
        "generation_max_tokens": 16,
    }
    return TrainingOptions(**(base | overrides))


def test_loss_decreases_on_a_repeated_batch(tiny, tmp_path):
    model_dir, items = tiny
    model, processor = load_base(str(model_dir))
    cache = FeatureCache(tmp_path / "cache", processor, "transcribe", multilingual=True)
    samples = to_samples(items[:4], 30.0, pack=False)
    pairs = [cache.get(s, s.language) for s in samples]
    batch = collate(
        [
            {"input_features": torch.from_numpy(np.array(feats)), "labels": torch.from_numpy(ids)}
            for feats, ids in pairs
        ],
        model.config.decoder_start_token_id,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
    assert all(b < a for a, b in itertools.pairwise(losses[:5])), losses


def test_labels_carry_language_task_and_no_timestamps_prefix(tiny):
    _, processor = load_base(str(tiny[0]))
    ids = label_ids(processor, "jedan dva", "sr", "transcribe", multilingual=True)
    tokens = processor.tokenizer.convert_ids_to_tokens(ids[:4])
    assert tokens == ["<|startoftranscript|>", "<|sr|>", "<|transcribe|>", "<|notimestamps|>"]
    assert ids[-1] == processor.tokenizer.eos_token_id
    assert processor.tokenizer.decode(ids, skip_special_tokens=True).strip() == "jedan dva"


def test_feature_cache_reuses_and_repairs_entries(tiny, tmp_path):
    _, processor = load_base(str(tiny[0]))
    sample = to_samples(tiny[1][:1], 30.0, pack=False)[0]
    cache = FeatureCache(tmp_path, processor, "transcribe", multilingual=True)
    first = cache.get(sample, "en")
    second = cache.get(sample, "en")
    assert (cache.misses, cache.hits) == (1, 1)
    assert isinstance(second[0], np.memmap) and np.array_equal(first[0], second[0])
    [entry] = [p for p in tmp_path.rglob("features.npy")]
    entry.write_bytes(b"corrupt")
    repaired = cache.get(sample, "en")
    assert cache.repaired == 1 and np.array_equal(repaired[0], first[0])
    assert cache.key(sample, "sr") != cache.key(sample, "en")


def test_timestamped_labels_wrap_each_phrase_in_its_times(tiny):
    _, processor = load_base(str(tiny[0]))
    phrases = [(0.1, 0.8, "jedan dva"), (1.5, 2.0, "tri")]
    ids = label_ids(processor, "jedan dva tri", "sr", "transcribe", True, phrases)
    tokenizer = processor.tokenizer
    assert tokenizer.convert_ids_to_tokens(ids[:4]) == [
        "<|startoftranscript|>",
        "<|sr|>",
        "<|transcribe|>",
        "<|0.10|>",
    ]
    assert "<|notimestamps|>" not in tokenizer.convert_ids_to_tokens(ids)
    assert tokenizer.decode(ids, decode_with_timestamps=True).endswith(
        "<|0.10|> jedan dva<|0.80|><|1.50|> tri<|2.00|><|endoftext|>"
    )
    assert tokenizer.decode(ids, skip_special_tokens=True).strip() == "jedan dva tri"


def test_a_seeded_share_of_samples_keeps_timestamps_and_packing_shifts_them(tiny):
    items = [{**item, "timestamps": [[0.1, item["duration"] - 0.1, item["transcript"]]]} for item in tiny[1]]
    many = [{**items[k % len(items)], "id": f"item-{k}"} for k in range(400)]
    drawn = to_samples(many, 30.0, pack=False, timestamp_probability=0.2, seed=1)
    share = sum(s.timestamps is not None for s in drawn) / len(drawn)
    assert 0.14 < share < 0.26
    assert drawn == to_samples(many, 30.0, pack=False, timestamp_probability=0.2, seed=1)  # every epoch alike
    assert to_samples(many, 30.0, pack=False, timestamp_probability=0.2, seed=2) != drawn
    [packed] = [s for s in to_samples(items, 30.0, pack=True, timestamp_probability=1.0) if len(s.ids) > 1][
        :1
    ]
    first, second = packed.timestamps[:2]
    duration = next(i["duration"] for i in items if i["id"] == packed.ids[0])
    assert second[0] == pytest.approx(duration + PACK_GAP_SECONDS + 0.1, abs=0.01) and first[0] == 0.1
    without = [{**items[0], "timestamps": None}]
    assert to_samples(without, 30.0, pack=False, timestamp_probability=1.0)[0].timestamps is None


def test_packing_joins_one_speakers_utterances_within_the_window(tiny):
    items = tiny[1]
    packed = to_samples(items, window_seconds=5.0, pack=True)
    for sample in packed:
        speakers = {next(i["speaker"] for i in items if i["id"] == item_id) for item_id in sample.ids}
        assert len(speakers) == 1 and sample.duration <= 5.0
    assert sum(len(s.ids) for s in packed) == len(items) and len(packed) < len(items)
    assert to_samples([{**items[0], "speaker": None}, {**items[1], "speaker": None}], 30.0, True)[0].ids == (
        "item-0",
    )


def test_train_saves_a_model_that_loads_and_decodes(tiny, tmp_path):
    model_dir, items = tiny
    result = train(
        options(model_dir), items, items[:2], tmp_path / "run", tmp_path / "cache", tmp_path / "log.jsonl"
    )
    assert result.steps == 6 and result.best_step in (3, 6)
    records = [r for r in result.history if r["stage"] == "train"]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert {"loss", "lr", "grad_norm", "timestamp"} <= set(records[0])
    assert [r["step"] for r in result.history if r["stage"] == "eval"] == [3, 6]

    reloaded = WhisperForConditionalGeneration.from_pretrained(result.model_dir)
    processor = WhisperProcessor.from_pretrained(result.model_dir)
    assert reloaded.config.max_source_positions == 200  # 4 s window kept in the saved model
    assert processor.feature_extractor.n_samples == 4 * 16_000
    hypotheses = transcribe(reloaded, processor, items[:2], max_new_tokens=8)
    assert len(hypotheses) == 2 and all(isinstance(h, str) for h in hypotheses)


def test_a_full_window_finish_saves_a_general_model(tiny, tmp_path):
    model_dir, items = tiny
    opts = options(model_dir, full_window_steps=2, eval_every=2)
    result = train(opts, items, items[:2], tmp_path / "run", tmp_path / "cache", tmp_path / "log.jsonl")
    assert [r["step"] for r in result.history if r["stage"] == "full_window"] == [4]
    assert result.steps == 6 and result.best_step == 6  # chosen among the full-window model's evaluations
    reloaded = WhisperForConditionalGeneration.from_pretrained(result.model_dir)
    processor = WhisperProcessor.from_pretrained(result.model_dir)
    assert reloaded.config.max_source_positions == 1500
    assert processor.feature_extractor.n_samples == 30 * 16_000
    assert len(transcribe(reloaded, processor, items[:2], max_new_tokens=8)) == 2
    again = train(opts, items, items[:2], tmp_path / "run", tmp_path / "cache", tmp_path / "log.jsonl")
    assert again.resumed_from_step == 6 and again.samples == result.samples  # a finished run, re-published


def test_an_auto_window_run_trims_to_its_longest_item_and_ends_a_general_model(tiny, tmp_path):
    model_dir, items = tiny
    opts = options(model_dir, window_seconds=None, full_window_steps=None, eval_every=100)
    result = train(opts, items, items[:2], tmp_path / "run", tmp_path / "cache", tmp_path / "log.jsonl")
    longest = max(i["duration"] for i in items)
    assert result.window_seconds == max(4, math.ceil(longest)) < 30 and result.full_window_steps == 1
    assert [r["step"] for r in result.history if r["stage"] == "full_window"] == [5]
    assert result.samples == len(items)  # the window holds every item
    reloaded = WhisperForConditionalGeneration.from_pretrained(result.model_dir)
    assert reloaded.config.max_source_positions == 1500


def test_the_auto_share_is_held_to_where_a_general_selection_set_forgets_little(tiny, tmp_path, monkeypatch):
    model_dir, items = tiny
    monkeypatch.setattr(trainer_module, "MAX_SELECTION_BASE_WER", 10.0)  # the random tiny base hears nothing
    opts = options(model_dir, eval_every=3)
    result = train(
        opts,
        items,
        items[:2],
        tmp_path / "run",
        tmp_path / "c",
        tmp_path / "log.jsonl",
        general_items=items[2:4],
    )
    [record] = [r for r in result.history if r["stage"] == "interpolation"]
    general = record["general"]
    assert general["base_wer"] is not None and general["tried"]
    assert (
        record["interpolation_share"]
        == result.interpolation
        == min(general["domain_share"], general["share"])
    )
    without = train(opts, items, items[:2], tmp_path / "b", tmp_path / "c", tmp_path / "b.jsonl")
    [plain] = [r for r in without.history if r["stage"] == "interpolation"]
    assert "general" not in plain and plain["interpolation_share"] == general["domain_share"]


def test_the_saved_model_is_the_best_checkpoint_mixed_with_the_base(tiny, tmp_path):
    model_dir, items = tiny
    opts = options(model_dir, interpolation=0.5, full_window_steps=2, eval_every=2)
    result = train(opts, items, items[:2], tmp_path / "run", tmp_path / "cache", tmp_path / "log.jsonl")
    saved = load_file(str(result.model_dir / "model.safetensors"))
    best = load_file(
        str(Checkpoints(tmp_path / "run" / "checkpoints").path(result.best_step) / "model.safetensors")
    )
    base = load_file(str(model_dir / "model.safetensors"))
    assert result.interpolation == 0.5
    [base_record] = [r for r in result.history if r["stage"] == "base"]
    base_model, processor = load_base(str(model_dir))  # the bar is the base at its own 30 s window
    assert base_record["base_wer"] == trainer_module._validation_wer(
        base_model, processor, items[:2], opts, None
    )
    for name in ("model.encoder.layers.0.fc1.weight", "model.encoder.embed_positions.weight"):
        assert not torch.allclose(best[name], base[name])
        assert torch.allclose(saved[name], (best[name] + base[name]) / 2, atol=1e-6)


def test_auto_interpolation_keeps_the_validation_wer_within_its_tolerance(tiny, tmp_path, monkeypatch):
    model_dir, items = tiny
    result = train(
        options(model_dir), items, items[:2], tmp_path / "run", tmp_path / "cache", tmp_path / "log.jsonl"
    )
    [mixed] = [r for r in result.history if r["stage"] == "interpolation"]
    assert mixed["interpolation_share"] == result.interpolation and mixed["tuned_wer"] == result.best_wer
    assert 0 < len(mixed["tried"]) <= 3
    chosen = mixed["tried"].get(str(result.interpolation), result.best_wer)
    assert chosen <= result.best_wer + 0.01
    smaller = [float(share) for share, wer in mixed["tried"].items() if wer > result.best_wer + 0.01]
    assert all(share < result.interpolation for share in smaller)
    saved = load_file(str(result.model_dir / "model.safetensors"))
    monkeypatch.setattr(trainer_module, "_validation_wer", lambda *args: pytest.fail("validated again"))
    again = train(
        options(model_dir), items, items[:2], tmp_path / "run", tmp_path / "cache", tmp_path / "log.jsonl"
    )
    assert again.interpolation == result.interpolation  # re-published with the share chosen the first time
    resaved = load_file(str(again.model_dir / "model.safetensors"))
    assert all(torch.equal(resaved[name], saved[name]) for name in saved)


@pytest.mark.parametrize(
    ("losses", "diverges_at"),
    [
        ([2.0, 1.9, 1.8, 1.7, 1.6, 1.5] + [9.0] * 5, 10),  # losses that stay high: the third
        ([2.0, 1.9, 1.8, 1.7, 1.6, 1.5, 9.0, 1.4, 1.3, 1.2, 1.1, 1.0], None),  # one hard batch
        ([0.05] * 10 + [0.3] * 5, None),  # 6x, but within 2 nats: late training, hard batches
        ([2.0, float("nan")], 2),
        ([9.0, 9.0, 2.0, 1.9, 1.8, 1.7, 1.6], None),  # high first losses: warm-up
    ],
)
def test_losses_that_stay_high_or_are_not_finite_are_divergence(losses, diverges_at):
    opts = TrainingOptions(max_steps=60)
    state = {"recent_losses": [], "step": 0}
    found = None
    for loss in losses:
        state["step"] += 1
        if trainer_module._loss_diverging(state, opts, loss) and found is None:
            found = state["step"]
    assert found == diverges_at


@pytest.mark.parametrize(("diverges_at", "rolled_back_to"), [(4, "checkpoint 3"), (2, "base")])
def test_a_diverged_run_stops_and_rolls_back_to_its_best_checkpoint_or_the_base(
    tiny, tmp_path, monkeypatch, diverges_at, rolled_back_to
):
    model_dir, items = tiny
    diverging = trainer_module._loss_diverging
    monkeypatch.setattr(
        trainer_module,
        "_loss_diverging",
        lambda state, options, loss: (
            diverging(state, options, loss) or ("injected" if state["step"] == diverges_at else None)
        ),
    )
    opts = options(model_dir, interpolation=1.0, max_steps=8, save_every=8)
    result = train(opts, items, items[:2], tmp_path / "run", tmp_path / "cache", tmp_path / "log.jsonl")
    [diverged] = [r for r in result.history if r["stage"] == "diverged"]
    assert diverged["step"] == result.steps == diverges_at and diverged["reason"] == "injected"
    saved = load_file(str(result.model_dir / "model.safetensors"))
    expected = (
        Checkpoints(tmp_path / "run" / "checkpoints").path(3) / "model.safetensors"
        if rolled_back_to == "checkpoint 3"
        else model_dir / "model.safetensors"
    )
    name = "model.encoder.layers.0.fc1.weight"
    assert torch.equal(saved[name], load_file(str(expected))[name])
    again = train(opts, items, items[:2], tmp_path / "run", tmp_path / "cache", tmp_path / "log.jsonl")
    assert again.steps == diverges_at  # a diverged run is not resumed into more steps


def test_a_restored_window_keeps_the_trained_positions_and_the_bases_beyond(tiny):
    model_dir, _ = tiny
    model, processor = load_base(str(model_dir))
    base = model.model.encoder.embed_positions.weight.detach().clone()
    full = trim_encoder_window(model, processor.feature_extractor, 4.0)
    with torch.no_grad():
        model.model.encoder.embed_positions.weight.add_(1.0)  # what training did to the trimmed rows
    restore_encoder_window(model, processor.feature_extractor, full)
    restored = model.model.encoder.embed_positions.weight
    assert restored.shape == base.shape and model.config.max_source_positions == 1500
    torch.testing.assert_close(restored[:200], base[:200] + 1.0)
    torch.testing.assert_close(restored[200:], base[200:])
    assert processor.feature_extractor.nb_max_frames == 3000


def test_the_auto_window_holds_the_longest_item_and_the_last_sixth_trains_at_30_s():
    auto = TrainingOptions(max_steps=60)
    assert auto.windows([0.4, 0.88]) == (4.0, 10)  # at least 4 s
    assert auto.windows([3.2, 12.01]) == (13.0, 10)
    assert auto.windows([29.5]) == (30.0, 0)  # a long item: no trimming
    assert TrainingOptions(max_steps=60, full_window_steps=0).windows([0.9]) == (4.0, 0)  # a specialist
    assert TrainingOptions(max_steps=60, window_seconds=4.0).windows([0.9]) == (4.0, 10)
    assert TrainingOptions(max_steps=60, window_seconds=30.0).windows([0.9]) == (30.0, 0)
    # early stopping could end the run in its trimmed phase; a one-step run has no steps to trim
    assert TrainingOptions(max_steps=60, early_stopping_patience=2).windows([0.9]) == (30.0, 0)
    assert TrainingOptions(max_steps=1).windows([0.9]) == (30.0, 0)


def test_the_acoustic_method_keeps_the_decoders_language_model(tiny):
    model_dir, _ = tiny
    model, _ = load_base(str(model_dir))
    model = apply_method(model, options(model_dir, method="acoustic"))
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    decoder = {name for name in trained if name.startswith("model.decoder.")}
    assert any(name.startswith("model.encoder.") for name in trained)
    assert decoder and all(".encoder_attn" in name for name in decoder)  # cross-attention and its norm
    assert not any("embed_tokens" in name or "proj_out" in name for name in trained)


def test_full_window_steps_are_the_last_steps_of_a_run_without_early_stopping(tiny):
    model_dir, _ = tiny
    with pytest.raises(ValueError, match="fewer than max_steps"):
        options(model_dir, full_window_steps=6)
    with pytest.raises(ValueError, match="do not combine"):
        options(model_dir, full_window_steps=2, early_stopping_patience=2)


def test_samples_whose_labels_overflow_the_decoder_are_left_out(tiny, caplog):
    model_dir, items = tiny
    _, processor = load_base(str(model_dir))
    long_text = " ".join(["seventy seven"] * 120)
    samples = to_samples([*items[:2], {**items[2], "transcript": long_text}], 30.0, pack=False)
    with caplog.at_level("WARNING"):
        kept = fitting_labels(samples, processor, None, "transcribe", True, max_tokens=448)
    assert [s.text for s in kept] == [s.text for s in samples[:2]]
    assert "1 of 3 samples have labels longer than the decoder's 448 positions" in caplog.text
    assert len(label_ids(processor, long_text, "en", "transcribe", True)) > 448  # the check is not vacuous


def test_lora_trains_adapters_and_saves_a_merged_model(tiny, tmp_path):
    model_dir, items = tiny
    result = train(
        options(model_dir, method="lora", lora_rank=4, max_steps=3, eval_every=3),
        items,
        [],
        tmp_path / "run",
        tmp_path / "cache",
        tmp_path / "log.jsonl",
    )
    merged = load_file(str(result.model_dir / "model.safetensors"))
    assert not any("lora" in name for name in merged)
    base = load_file(str(model_dir / "model.safetensors"))
    name = "model.encoder.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(merged[name], base[name])  # adapters were merged into the weights
    assert torch.equal(merged["model.encoder.layers.0.fc1.weight"], base["model.encoder.layers.0.fc1.weight"])


@pytest.mark.parametrize("group_by_length", [False, True])
def test_replay_fills_its_share_of_every_batch_and_the_domain_is_seen_once_per_epoch(group_by_length):
    domain, replay = 23, 5
    sampler = ResumableBatchSampler(
        [1.0 + (i % 4) for i in range(domain)],
        8,
        seed=3,
        group_by_length=group_by_length,
        replay=replay,
        replay_per_batch=2,
    )
    batches = sampler.batches(epoch=0)
    assert len(batches) == len(sampler) == 4  # 23 domain samples, 6 per batch
    assert sorted(i for b in batches for i in b if i < domain) == list(range(domain))
    drawn = [i for b in batches for i in b if i >= domain]
    assert [sum(i >= domain for i in b) for b in batches] == [2, 2, 2, 2]
    assert set(drawn) == set(range(domain, domain + replay))  # 8 draws cycle through all 5
    assert sampler.batches(epoch=0) == batches and sampler.batches(epoch=1) != batches
    sampler.start_batch = 2
    assert list(sampler) == batches[2:]


def test_training_mixes_the_replay_set_into_its_batches(tiny, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    model_dir, items = tiny
    opts = options(model_dir, max_steps=2, eval_every=100, replay_share=0.34, batch_size=3)
    result = train(
        opts, items[:4], [], tmp_path / "run", tmp_path / "cache", tmp_path / "log.jsonl", None, items[4:6]
    )
    assert result.samples == 4 and result.cache["misses"] == 6  # two domain batches of 2 + 1 replay each
    plain = train(
        options(model_dir, max_steps=2, eval_every=100, replay_share=0.34, batch_size=3),
        items[:4],
        [],
        tmp_path / "plain",
        tmp_path / "cache-plain",
        tmp_path / "plain.jsonl",
    )
    assert plain.cache["misses"] == 4 and "no replay set" in caplog.text


def test_trimmed_window_model_matches_its_feature_extractor(tiny):
    model, processor = load_base(str(tiny[0]))
    trim_encoder_window(model, processor.feature_extractor, 8.0)
    features = processor.feature_extractor(
        np.zeros(16_000, np.float32), sampling_rate=16_000, return_tensors="pt"
    ).input_features
    assert features.shape[-1] == 800
    assert model.get_encoder()(features).last_hidden_state.shape[1] == 400


_CRASHING_TRAIN = """
import os, signal, sys
from pathlib import Path
from whisper_assets.training import checkpoints
from whisper_assets.training.options import TrainingOptions
from whisper_assets.training.trainer import train
from whisper_assets_tests.training_fixtures import make_items

original = checkpoints.Checkpoints.save
def save_then_die(self, step, *args):
    folder = original(self, step, *args)
    if step == 4:
        os.kill(os.getpid(), signal.SIGKILL)  # the process dies like an evicted pod, right after a checkpoint
    return folder
checkpoints.Checkpoints.save = save_then_die
root = Path(sys.argv[1])
options = TrainingOptions.model_validate_json(sys.argv[2])
items = make_items(root / "audio-crash")
train(options, items, items[:2], root / "run", root / "cache", root / "log.jsonl")
"""


@pytest.mark.parametrize("full_window_steps", [0, 3], ids=["trimmed", "full-window-finish"])
def test_resume_after_a_kill_matches_an_uninterrupted_run(tiny, tmp_path, full_window_steps):
    model_dir, items = tiny
    opts = options(model_dir, max_steps=6, save_every=2, eval_every=100, full_window_steps=full_window_steps)
    reference = train(
        opts, items, [], tmp_path / "reference", tmp_path / "cache", tmp_path / "reference.jsonl"
    )

    crashed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CRASHING_TRAIN), str(tmp_path), opts.model_dump_json()],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert Checkpoints(tmp_path / "run" / "checkpoints").latest().name == "checkpoint-00000004"

    crash_items = [
        {**i, "audio": str(tmp_path / "audio-crash" / f"clip{k}.wav")} for k, i in enumerate(items)
    ]
    resumed = train(opts, crash_items, [], tmp_path / "run", tmp_path / "cache", tmp_path / "log.jsonl")
    assert resumed.resumed_from_step == 4 and resumed.steps == 6
    want = load_file(str(reference.model_dir / "model.safetensors"))
    got = load_file(str(resumed.model_dir / "model.safetensors"))
    assert want.keys() == got.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-5)


def test_an_interrupted_checkpoint_save_leaves_the_previous_one_usable(tiny, tmp_path, monkeypatch):
    model_dir, items = tiny
    opts = options(model_dir, max_steps=2, save_every=2, eval_every=100)
    train(opts, items, [], tmp_path / "run", tmp_path / "cache", tmp_path / "log.jsonl")
    checkpoints = Checkpoints(tmp_path / "run" / "checkpoints")
    assert checkpoints.latest().name == "checkpoint-00000002"

    real_save = torch.save
    calls = {"n": 0}

    def failing_save(obj, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the RNG file of the next checkpoint: the disk filled up mid-save
            raise OSError("No space left on device")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(checkpoints_module.torch, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        train(
            options(model_dir, max_steps=4, save_every=2, eval_every=100),
            items,
            [],
            tmp_path / "run",
            tmp_path / "cache",
            tmp_path / "log.jsonl",
        )
    monkeypatch.undo()
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-00000004").exists()
    assert not (tmp_path / "run" / "checkpoints" / "checkpoint-00000004" / MARKER).exists()
    assert checkpoints.latest().name == "checkpoint-00000002"
    resumed = train(
        options(model_dir, max_steps=4, save_every=2, eval_every=100),
        items,
        [],
        tmp_path / "run",
        tmp_path / "cache",
        tmp_path / "log.jsonl",
    )
    assert resumed.resumed_from_step == 2 and resumed.steps == 4


_DATA_PARALLEL_TRAIN = """
import json
import sys
from pathlib import Path
from whisper_assets.training.options import TrainingOptions
from whisper_assets.training.trainer import train

root = Path(sys.argv[1])
options = TrainingOptions.model_validate_json(sys.argv[2])
items = json.loads(sys.argv[3])
train(options, items, [], root / "parallel", root / "parallel-cache", root / "parallel.jsonl")
"""


_TWO_PROCESSES = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


@pytest.mark.slow
def test_two_cpu_processes_train_like_one_with_the_same_global_batch(tiny, tmp_path):
    model_dir, items = tiny
    opts = options(model_dir, max_steps=3, batch_size=4, eval_every=100, group_by_length=False)
    single = train(opts, items[:4], [], tmp_path / "single", tmp_path / "cache", tmp_path / "single.jsonl")

    script = tmp_path / "parallel_train.py"
    script.write_text(textwrap.dedent(_DATA_PARALLEL_TRAIN))
    launched = subprocess.run(
        [*_TWO_PROCESSES, str(script), str(tmp_path), opts.model_dump_json(), json.dumps(items[:4])],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"},
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "parallel.jsonl").read_text().splitlines()]
    parallel_losses = [r["loss"] for r in records if r["stage"] == "train"]
    single_losses = [r["loss"] for r in single.history if r["stage"] == "train"]
    assert len(parallel_losses) == len(single_losses) == 3  # one log: only the main process writes
    # Each process averages its own tokens and the gradients are averaged across processes, so the losses match
    # a single process's token average up to how unevenly the tokens fall between the two halves of a batch.
    np.testing.assert_allclose(parallel_losses, single_losses, rtol=0.05)
    # Adam moves every weight by about the learning rate whatever its gradient's size, so weights are compared by
    # the direction of the whole update: synchronized gradients make it the single process's update; a process
    # that trained on its half of each batch alone would not.
    base = load_file(str(model_dir / "model.safetensors"))
    want = load_file(str(single.model_dir / "model.safetensors"))
    got = load_file(str(tmp_path / "parallel" / "model" / "model.safetensors"))
    halves = opts.model_copy(update={"batch_size": 2})
    half = train(halves, items[:2], [], tmp_path / "half", tmp_path / "cache", tmp_path / "half.jsonl")
    alone = load_file(str(half.model_dir / "model.safetensors"))
    assert want.keys() == got.keys()

    def update(weights):
        shared = sorted(
            name for name in base if base[name].shape == weights[name].shape
        )  # not a trimmed window
        return torch.cat([(weights[name] - base[name]).flatten() for name in shared])

    def agreement(weights):
        return float(torch.nn.functional.cosine_similarity(update(weights), update(want), dim=0))

    # Measured: 0.99 for the two processes, 0.82 for one process on its half of each batch.
    assert agreement(got) > 0.97 > 0.9 > agreement(alone)


def test_the_kl_to_the_teacher_is_zero_for_its_own_logits_and_leaves_padding_out():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 11)
    labels = torch.tensor([[1, 2, 3, 4], [5, 6, IGNORED_LABEL, IGNORED_LABEL]])
    assert kl_to_teacher(logits, logits, labels).item() == pytest.approx(0.0, abs=1e-6)
    other = logits.clone()
    other[1, 2:] = torch.randn(2, 11)  # padding positions only
    assert kl_to_teacher(other, logits, labels).item() == pytest.approx(0.0, abs=1e-6)
    assert kl_to_teacher(torch.randn(2, 4, 11), logits, labels).item() > 0.1


def test_distillation_holds_the_model_near_its_base_through_the_full_window_phase(tiny, tmp_path):
    model_dir, items = tiny
    batch_size = 4
    runs = {}
    for weight in (0.0, 0.9):
        opts = options(
            model_dir, distillation=weight, full_window_steps=2, interpolation=1.0, batch_size=batch_size
        )
        runs[weight] = train(
            opts,
            items,
            items[:2],
            tmp_path / f"run{weight}",
            tmp_path / "cache",
            tmp_path / f"log{weight}.jsonl",
        )
    steps = [r for r in runs[0.9].history if r["stage"] == "train"]
    assert [r["step"] for r in steps] == list(range(1, 7))  # trimmed steps and the two at 30 s
    assert steps[0]["kl"] == pytest.approx(0.0, abs=1e-4)  # the teacher is the base, at the student's window
    assert "kl" not in runs[0.0].history[1]

    base, processor = load_base(str(model_dir))
    cache = FeatureCache(tmp_path / "cache", processor, "transcribe", multilingual=True)
    pairs = [cache.get(s, s.language) for s in to_samples(items[:batch_size], 30.0, pack=False)]
    batch = collate(
        [
            {"input_features": torch.from_numpy(np.array(f)), "labels": torch.from_numpy(ids)}
            for f, ids in pairs
        ],
        base.config.decoder_start_token_id,
    )

    def drift(run) -> float:
        tuned = WhisperForConditionalGeneration.from_pretrained(run.model_dir).eval()
        with torch.no_grad():
            return kl_to_teacher(tuned(**batch).logits, base(**batch).logits, batch["labels"]).item()

    # Adam rescales the cross-entropy's share away: the pull comes from the KL term alone, once the model drifts
    # (0.76x of the plain run's drift after these 6 steps, 0.69x after 12)
    assert drift(runs[0.9]) < 0.85 * drift(runs[0.0])
