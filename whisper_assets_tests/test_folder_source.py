import json
import os

from whisper_assets.curation.inventory import build_inventory
from whisper_assets.sources.folder import scan_folder
from whisper_assets.sources.watch import ScanProgress, fingerprint_tree


def entries_by_path(root, language="en"):
    return {e.rel_path: e for e in scan_folder(root, language)}


def test_sidecars_csv_and_jsonl_are_all_read(tmp_path, write_clip):
    root = tmp_path / "src"
    write_clip(root / "a.wav", "alpha")
    (root / "a.txt").write_text("raw alpha", encoding="utf-8")
    (root / "a.norm.txt").write_text("alpha", encoding="utf-8")
    write_clip(root / "nested" / "deeper" / "b.flac", "beta")
    (root / "nested" / "deeper" / "b.txt").write_text("beta", encoding="utf-8")
    write_clip(root / "csv" / "c.mp3", "gamma")
    (root / "csv" / "metadata.csv").write_text(
        "file_name,transcription,speaker_id,language\nc.mp3,gamma,spk1,hr\nmissing.wav,ghost,,\n",
        encoding="utf-8",
    )
    write_clip(root / "d.ogg", "delta")
    (root / "d.txt").write_text("sidecar loses to the manifest", encoding="utf-8")
    lines = [
        {"id": "d", "audio": "d.ogg", "transcript": "delta", "speaker": "spk2", "language": "en"},
        {"id": "x", "audio": "../outside.wav", "transcript": "nope"},
    ]
    (root / "manifest.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\nnot json\n", encoding="utf-8")

    entries = entries_by_path(root)
    assert entries["a.wav"].transcript == "alpha" and entries["a.wav"].transcript_origin == "a.norm.txt"
    assert entries["nested/deeper/b.flac"].transcript == "beta"
    c = entries["csv/c.mp3"]
    assert (c.transcript, c.speaker, c.language, c.transcript_origin) == (
        "gamma",
        "spk1",
        "hr",
        "csv/metadata.csv",
    )
    d = entries["d.ogg"]
    assert (d.transcript, d.speaker, d.transcript_origin) == ("delta", "spk2", "manifest.jsonl")
    assert "does not exist" in entries["csv/metadata.csv#L3"].problem
    assert "points outside the source folder" in entries["manifest.jsonl#L2"].problem
    assert "invalid JSON" in entries["manifest.jsonl#L3"].problem
    assert "a.txt" not in entries and "d.txt" not in entries  # claimed sidecars are not reported as junk


def test_odd_names_non_audio_and_orphans_are_entries_with_reasons(tmp_path, write_clip):
    root = tmp_path / "src"
    write_clip(root / "Škola – take 1 (final).wav", "skola")
    (root / "Škola – take 1 (final).txt").write_text("Škola", encoding="utf-8")
    (root / "slides.pdf").write_bytes(b"%PDF")
    (root / "orphan.txt").write_text("no audio", encoding="utf-8")
    (root / ".hidden.wav").write_bytes(b"ignored")
    entries = entries_by_path(root)
    assert entries["Škola – take 1 (final).wav"].transcript == "Škola"
    assert entries["slides.pdf"].problem == "unsupported file type .pdf"
    assert entries["orphan.txt"].problem == "transcript without a matching audio file"
    assert ".hidden.wav" not in entries


def test_cp1250_sidecar_is_converted_and_noted(tmp_path, write_clip):
    root = tmp_path / "src"
    write_clip(root / "a.wav", "x")
    (root / "a.txt").write_bytes("Đaci čekaju ćevape".encode("cp1250"))
    entry = entries_by_path(root, "hr")["a.wav"]
    assert (entry.transcript, entry.transcript_encoding) == ("Đaci čekaju ćevape", "cp1250")


def test_inventory_rereads_only_changed_files(tmp_path, write_clip):
    root = tmp_path / "src"
    for name in ("a", "b", "c"):
        write_clip(root / f"{name}.wav", name * 5)
    (root / "broken.wav").write_bytes(b"\x00" * 100)
    first = build_inventory("src", root, "en", [])
    assert first.probed == 4 and first.reused == 0
    rows = {r["rel_path"]: r for r in first.rows}
    assert rows["broken.wav"]["readable"] is False and rows["broken.wav"]["rejection_reason"]
    assert rows["a.wav"]["readable"] and rows["a.wav"]["sha256"] and rows["a.wav"]["duration"] > 0

    again = build_inventory("src", root, "en", first.rows)
    assert again.probed == 0 and again.rows == first.rows

    write_clip(root / "b.wav", "changed content here")
    os.utime(root / "b.wav", ns=(1, 1))
    third = build_inventory("src", root, "en", again.rows)
    assert third.probed == 1
    assert {r["rel_path"]: r["sha256"] for r in third.rows}["b.wav"] != rows["b.wav"]["sha256"]
    assert [r["id"] for r in third.rows] == [r["id"] for r in first.rows]  # ids are stable


def test_tree_fingerprint_resumes_across_ticks_to_the_same_value(tmp_path, monkeypatch):
    root = tmp_path / "many"
    for i in range(50):
        (root / f"d{i % 5}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 5}" / f"f{i}.txt").write_text(str(i))
    whole = fingerprint_tree(root, ScanProgress("s"), deadline=float("inf"))

    monkeypatch.setattr("whisper_assets.sources.watch._PAGE", 7)
    progress, ticks, result = ScanProgress("s"), 0, None
    while result is None:
        result = fingerprint_tree(root, progress, deadline=0.0)  # out of time after every page
        ticks += 1
    assert result == whole and ticks == 8

    (root / "d0" / "f0.txt").write_text("changed!")
    assert fingerprint_tree(root, ScanProgress("s"), deadline=float("inf")) != whole


def test_metadata_csv_encoding_is_noted_and_bad_columns_are_reported(tmp_path, write_clip):
    root = tmp_path / "src"
    write_clip(root / "a.wav", "x")
    (root / "metadata.csv").write_bytes("file_name,transcription\na.wav,Šuma i đak\n".encode("cp1250"))
    write_clip(root / "other" / "b.wav", "y")
    (root / "other" / "metadata.csv").write_text("name,text\nb.wav,hello\n", encoding="utf-8")
    entries = entries_by_path(root, "hr")
    assert (entries["a.wav"].transcript, entries["a.wav"].transcript_encoding) == ("Šuma i đak", "cp1250")
    assert (
        entries["other/metadata.csv#L1"].problem
        == "line 1: metadata.csv needs columns file_name,transcription"
    )
    assert entries["other/b.wav"].transcript is None
