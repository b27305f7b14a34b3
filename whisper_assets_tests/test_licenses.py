import json

from whisper_assets.curation.licenses import licenses_markdown
from whisper_assets.sources.folder import FolderSource
from whisper_assets.sources.http_recordings import HttpRecordingsSource


def row(source, provenance=None, duration=1800.0):
    return {
        "source": source,
        "is_audio": True,
        "readable": True,
        "duration": duration,
        "provenance": json.dumps(provenance) if provenance else None,
    }


def test_licenses_report_declared_and_item_provenance():
    sources = [
        FolderSource(name="mine", license="CC-BY-4.0", provenance="recorded by us"),
        HttpRecordingsSource(name="remote", kind="http_recordings", base_url="https://rec.example.org"),
    ]
    inventory = [
        row("mine"),
        row("mine"),
        row(
            "remote",
            {
                "url": "https://rec.example.org/recordings/a.webm",
                "author": "sam",
                "license": "CC0-1.0",
                "retrieved": "2026-11-20T10:00:00+00:00",
            },
        ),
        row(
            "remote",
            {
                "url": "https://rec.example.org/recordings/b.webm",
                "author": "sam",
                "license": "CC0-1.0",
                "retrieved": "2026-11-21T10:00:00+00:00",
            },
        ),
    ]
    text = licenses_markdown(sources, inventory)
    mine = text[text.index("## mine") : text.index("## remote")]
    assert "| license (declared) | CC-BY-4.0 |" in mine and "2 readable audio files, 1.00 h" in mine
    assert "| origin | uploads/mine/ |" in mine
    remote = text[text.index("## remote") :]
    assert "| item license | CC0-1.0 (2) |" in remote and "| item author | sam (2) |" in remote
    assert "2026-11-20T10:00:00+00:00 to 2026-11-21T10:00:00+00:00" in remote
    assert "| origin | https://rec.example.org |" in remote
