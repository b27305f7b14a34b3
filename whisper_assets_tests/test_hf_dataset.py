"""Hugging Face datasets on disk as a source (no hub, no torchcodec)."""

import json
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict, Features, Value

from whisper_assets.sources.hf_dataset import Columns, export_dataset
from whisper_assets.tables import read_rows, table_path
from whisper_assets_tests.helpers import materialize_source

TEXTS = ["hello from a dataset", "a second spoken sentence", "and a third one"]


@pytest.fixture
def saved_dataset(tmp_path, write_clip):
    paths = [str(write_clip(tmp_path / "clips" / f"{i}.flac", t)) for i, t in enumerate(TEXTS)]
    data = {"audio": paths, "sentence": TEXTS, "client_id": ["ana", "ana", "bo"], "key": ["x1", "x2", "x3"]}
    data["audio"] = [{"path": p, "bytes": Path(p).read_bytes()} for p in paths]
    # Audio's storage layout, written without datasets' audio encoder (which needs torchcodec).
    audio = {"bytes": Value("binary"), "path": Value("string")}
    features = Features({"audio": audio, **{k: Value("string") for k in ("sentence", "client_id", "key")}})
    dataset = Dataset.from_dict(data, features=features)
    DatasetDict({"train": dataset.select([0, 1]), "test": dataset.select([2])}).save_to_disk(
        tmp_path / "saved"
    )
    return tmp_path / "saved"


def test_saved_dataset_rows_are_mirrored_with_mapped_columns(saved_dataset, tmp_path):
    columns = Columns(audio="audio", text="sentence", speaker="client_id", id="key")
    assert export_dataset(saved_dataset, tmp_path / "mirror", None, columns, "en") == 3
    rows = [json.loads(line) for line in (tmp_path / "mirror" / "manifest.jsonl").read_text().splitlines()]
    assert [(r["id"], r["transcript"], r["speaker"]) for r in rows] == [
        ("x1", TEXTS[0], "ana"),
        ("x2", TEXTS[1], "ana"),
        ("x3", TEXTS[2], "bo"),
    ]
    assert all((tmp_path / "mirror" / r["audio"]).stat().st_size > 0 for r in rows)
    assert export_dataset(saved_dataset, tmp_path / "mirror2", "test", columns, "en") == 1
    with pytest.raises(ValueError, match="columns \\['transcript'\\] not in split"):
        export_dataset(saved_dataset, tmp_path / "mirror3", None, Columns(text="transcript"), "en")


def test_audiofolder_source_flows_through_the_ingest_assets(tmp_path, write_clip, make_settings):
    folder = tmp_path / "audiofolder"
    for i, text in enumerate(TEXTS):
        write_clip(folder / f"clip{i}.wav", text)
    (folder / "metadata.csv").write_text(
        "file_name,text\n" + "".join(f"clip{i}.wav,{t}\n" for i, t in enumerate(TEXTS))
    )
    settings = make_settings(sources=[{"name": "hf", "kind": "hf_dataset", "path": str(folder)}])
    result = materialize_source(tmp_path / "whisper_assets.yaml", "hf")
    assert result.success
    transcripts = read_rows(table_path(settings.layout.tables_root, "normalized_transcripts", "hf"))
    assert sorted(r["transcript"] for r in transcripts if r["accepted"]) == sorted(TEXTS)
    assert (folder / "metadata.csv").exists() and sorted(p.name for p in folder.iterdir())[0] == "clip0.wav"
