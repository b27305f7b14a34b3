"""End to end in headless Chromium (Debian's chromium + chromedriver, driven by Selenium): play, edit, save."""

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from whisper_assets.demo.data import speech_like
from whisper_assets.review_app.app import create_app
from whisper_assets.sources import review_db

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# A test artifact (git-ignored); docs/review_app.png in the README is a copy of one.
SCREENSHOT = Path(__file__).resolve().parents[1] / "test-artifacts" / "review_app.png"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver"),
]


@pytest.fixture
def served(tmp_path):
    db = review_db.create_database(tmp_path / "review.db")
    with review_db.connect(db) as con:
        for text in ("the first recording to check", "<b>second</b> recording", "a third one"):
            con.execute(
                f"INSERT INTO {review_db.TABLE} (transcript, audio_blob) VALUES (?, ?)",
                (text, review_db.encode_blob(speech_like(text))),
            )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(db), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", db
    server.should_exit = True
    thread.join(timeout=10)


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
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait_for(condition, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_play_edit_save_with_ctrl_enter_and_check_the_database(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, db = served
    browser.get(url + "/")
    editor = browser.find_element(By.ID, "editor")
    wait_for(lambda: editor.get_attribute("value") == "the first recording to check")
    wait_for(lambda: "RMS" in browser.find_element(By.ID, "levels").text)

    browser.find_element(By.ID, "play").click()
    wait_for(lambda: browser.execute_script("return document.getElementById('audio').currentTime > 0.1"))

    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys("the first recording, checked")
    wait_for(lambda: "WER" in browser.find_element(By.ID, "diff-wer").text)
    assert browser.find_elements(By.CSS_SELECTOR, "#diff ins")  # the live diff marks the new words
    editor.send_keys(Keys.CONTROL, Keys.ENTER)  # save and next
    wait_for(lambda: browser.find_element(By.ID, "entry-id").text == "2")
    assert editor.get_attribute("value") == "<b>second</b> recording"  # markup stays text
    assert not browser.find_elements(By.CSS_SELECTOR, "#diff b")

    with review_db.connect(db, readonly=True) as con:
        row = con.execute(f"SELECT transcript, is_reviewed FROM {review_db.TABLE} WHERE id = 1").fetchone()
    assert row == ("the first recording, checked", 1)
    wait_for(lambda: "1/3 reviewed" in browser.find_element(By.ID, "progress-text").text)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000
