from pathlib import Path

import pytest

from whisper_assets.settings import SettingsError, load_settings
from whisper_assets.text.policy import Script


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "whisper_assets.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_relative_data_root_resolves_against_the_settings_file(tmp_path):
    path = write(
        tmp_path,
        "data_root: data\nsources:\n  - name: my-voice\n    language: hr\n    transcripts: {script: latin}\n",
    )
    settings = load_settings(path)
    assert settings.data_root == (tmp_path / "data").resolve()
    assert settings.source("my-voice").transcripts.script is Script.LATIN
    assert settings.layout.uploads_root == settings.data_root / "uploads"


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("sources:\n  - name: My Source\n", "sources.0.name"),
        ("sources:\n  - name: a,b\n", "no commas or pipes"),
        ("sources:\n  - name: ok\n    langauge: en\n", "sources.0.langauge: unknown key"),
        ("sources:\n  - name: ok\n    language: english\n", "not a language code"),
        ("splits: {train: 0.5, validation: 0.1, test: 0.1}\n", "must sum to 1"),
        ("sources:\n  - name: a\n  - name: a\n", "repeated: a"),
        ("sources:\n  - name: a\n    audio: {min_seconds: 5, max_seconds: 2}\n", "min_seconds must be below"),
        ("sources:\n  - {name: g, role: regression, split: test}\n", "regression set, which is never split"),
        ("sources:\n  - {name: g, split: holdout}\n", "sources.0"),
        ("- just a list\n", "mapping of settings"),
        ("sources: [\n", "not valid YAML"),
    ],
)
def test_invalid_settings_name_the_key_and_the_fix(tmp_path, yaml_text, expected):
    with pytest.raises(SettingsError, match=r"invalid settings|mapping|YAML") as error:
        load_settings(write(tmp_path, yaml_text))
    assert expected in str(error.value)


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


def test_folders_under_uploads_become_inferred_sources(make_settings, tmp_path):
    settings = make_settings(default_language="sr", sources=[{"name": "configured"}])
    (settings.layout.uploads_root / "dropped-in").mkdir(parents=True)
    (settings.layout.uploads_root / "Not A Slug").mkdir()
    (settings.layout.uploads_root / "duplicates").mkdir()
    names = [s.name for s in settings.discover_sources()]
    assert names == ["configured", "dropped-in"]
    assert settings.source("dropped-in").language == "sr"
    with pytest.raises(SettingsError, match="unknown dataset source 'ghost'"):
        settings.source("ghost")


def test_review_db_sources_need_a_path_and_resolve_it_next_to_the_settings(tmp_path):
    path = write(tmp_path, "sources:\n  - name: reviews\n    kind: review_db\n    path: db/review.db\n")
    [source] = load_settings(path).sources
    assert source.kind == "review_db" and source.path == str((tmp_path / "db" / "review.db").resolve())
    with pytest.raises(SettingsError, match=r"sources\.0\.path: Field required"):
        load_settings(write(tmp_path, "sources:\n  - name: reviews\n    kind: review_db\n"))
    with pytest.raises(SettingsError, match=r"sources\.0"):
        load_settings(write(tmp_path, "sources:\n  - name: x\n    kind: carrier_pigeon\n"))


@pytest.mark.parametrize(
    ("entry", "feeds"),
    [
        ({"name": "talk"}, True),
        (
            {
                "name": "keys",
                "kind": "http_recordings",
                "base_url": "https://example.org",
                "keystrokes": True,
            },
            False,
        ),
        (
            {
                "name": "keys",
                "kind": "http_recordings",
                "base_url": "https://example.org",
                "keystrokes": True,
                "speech_recognition": True,
            },
            True,
        ),
        ({"name": "voices", "speech_recognition": False}, False),
    ],
)
def test_typing_recordings_feed_speech_recognition_only_when_the_settings_say_so(make_settings, entry, feeds):
    [source] = make_settings(sources=[entry]).sources
    assert source.feeds_speech_recognition is feeds
