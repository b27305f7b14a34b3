"""Media sites through real yt-dlp against a local HTTP server (its generic extractor), no internet."""

import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from whisper_assets.sources.guard import UnsafeUrl, address_policy, check_url
from whisper_assets.sources.media_sites import sync_urls
from whisper_assets.text.timings import TimingsError, parse_subtitles

LAN = address_policy(allow_private=True)  # the test site is on 127.0.0.1

VTT = """WEBVTT

00:00:00.000 --> 00:00:02.500
<c>first line of the talk</c>

00:00:02.500 --> 00:00:05.000
second line of the talk

00:00:05.000 --> 00:00:07.400
third line
"""


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def site(tmp_path, write_clip):
    root = tmp_path / "site"
    root.mkdir()
    write_clip(root / "talk.webm", "first line of the talk second line of the talk third line", seconds=7.5)
    (root / "talk.vtt").write_text(VTT)
    (root / "broken.vtt").write_text("WEBVTT\n\nthis is not a cue\n")
    write_clip(root / "other.webm", "something", seconds=3.0)
    page = (
        '<html><head><title>{title}</title></head><body><video controls><source src="{media}" type="audio/webm">'
        '<track kind="subtitles" src="{subs}" srclang="en" label="English"></video></body></html>'
    )
    (root / "talk.html").write_text(page.format(title="A talk", media="talk.webm", subs="talk.vtt"))
    (root / "broken.html").write_text(page.format(title="Broken", media="other.webm", subs="broken.vtt"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_vtt_parsing_merges_rolling_auto_captions():
    cues = parse_subtitles(VTT, ".vtt")
    assert (cues[0].start, cues[0].end, cues[0].text) == (0.0, 2.5, "first line of the talk")
    rolling = "WEBVTT\n\n00:00.000 --> 00:01.000\nhello\n\n00:01.000 --> 00:02.000\nhello world\n"
    assert [c.text for c in parse_subtitles(rolling, ".vtt")] == ["hello", "world"]
    with pytest.raises(TimingsError, match="no timed lines"):
        parse_subtitles("WEBVTT\n\nno timing here\n", ".vtt")


@pytest.mark.parametrize("url", ["--exec=rm -rf ~", "-o/etc/passwd", "file:///etc/passwd", "ftp://x/y"])
def test_unsafe_urls_are_refused(url):
    with pytest.raises(UnsafeUrl):
        check_url(url)


def test_yt_dlp_downloads_audio_and_subtitles_as_a_timed_recording(site, tmp_path):
    folder = tmp_path / "source"
    stats = sync_urls([f"{site}/talk.html", f"{site}/broken.html", "-o bad"], folder, "en", False, LAN)
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    assert stats == {"videos": 1, "rejected": 2}
    assert [(s["start"], s["end"], s["text"]) for s in rows[0]["segments"]] == [
        (0.0, 2.5, "first line of the talk"),
        (2.5, 5.0, "second line of the talk"),
        (5.0, 7.4, "third line"),
    ]
    assert rows[0]["provenance"]["caption_kind"] == "manual" and rows[0]["provenance"]["title"].startswith(
        "A talk"
    )
    import soundfile as sf

    info = sf.info(str(folder / rows[0]["audio"]))
    assert info.samplerate == 16_000 and info.duration == pytest.approx(7.5, abs=0.05)  # the whole video
    rejected = (folder / "_rejected.jsonl").read_text()
    assert ".en.vtt: no timed lines" in rejected and "starts with '-'" in rejected
    kept = {p.suffix for p in (folder / ".raw").iterdir() if p.is_file()}
    assert kept <= {".webm", ".vtt"} and np.any(sf.read(str(folder / rows[0]["audio"]))[0])


def test_media_site_source_flows_through_the_ingest_assets_and_the_schedule(site, make_settings, tmp_path):
    import dagster as dg

    from whisper_assets.defs.partitions import source_partitions
    from whisper_assets.tables import read_rows, table_path
    from whisper_assets_tests.helpers import materialize_source, tick

    source = {
        "name": "talks",
        "kind": "youtube",
        "urls": [f"{site}/talk.html"],
        "allow_private_addresses": True,
    }
    settings = make_settings(sources=[source])
    config = tmp_path / "whisper_assets.yaml"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(source_partitions.name, ["talks"])
        requests = tick(config, "sync_remote_sources", instance)
        assert [r.partition_key for r in requests] == ["talks"]
        assert materialize_source(config, "talks", instance).success
    processed = read_rows(table_path(settings.layout.tables_root, "processed_audio", "talks"))
    assert [r["status"] for r in processed] == ["ok"]
    [segment] = read_rows(table_path(settings.layout.tables_root, "segments", "talks"))
    assert segment["timed_by"] == "source"  # its subtitles time it: no alignment model was needed
    assert segment["transcript"] == "first line of the talk second line of the talk third line"
    inventory = read_rows(table_path(settings.layout.tables_root, "inventory", "talks"))
    assert '"caption_kind": "manual"' in inventory[0]["provenance"]


def test_srv_timed_text_is_parsed():
    srv3 = '<timedtext format="3"><body><p t="0" d="1500">hello <s>there</s></p><p t="1500" d="1000">it&#39;s me</p></body></timedtext>'
    assert [(c.start, c.end, c.text) for c in parse_subtitles(srv3, ".srv3")] == [
        (0.0, 1.5, "hello there"),
        (1.5, 2.5, "it's me"),
    ]
    srv1 = '<transcript><text start="0.5" dur="2.0">first words</text></transcript>'
    assert [(c.start, c.end, c.text) for c in parse_subtitles(srv1, ".srv1")] == [(0.5, 2.5, "first words")]
    with pytest.raises(TimingsError, match="not valid XML"):
        parse_subtitles("<timedtext><body><p t=", ".srv3")
