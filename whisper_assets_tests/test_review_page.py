"""End to end in headless Chromium (Debian's chromium + chromedriver, driven by Selenium): play, edit, save."""

import threading
import time

import pytest
import uvicorn

from whisper_assets.demo.data import speech_like
from whisper_assets.review_app.app import SESSION_COOKIE, create_app
from whisper_assets.sources import review_db
from whisper_assets_tests.helpers import ARTIFACTS, NEEDS_BROWSER, free_port, wait_for

SCREENSHOT = ARTIFACTS / "review_app.png"
pytestmark = [pytest.mark.slow, NEEDS_BROWSER]


def serve(tmp_path, token: str | None = None):
    db = review_db.create_database(tmp_path / "review.db")
    with review_db.connect(db) as con:
        for text in ("the first recording to check", "<b>second</b> recording", "a third one"):
            con.execute(
                f"INSERT INTO {review_db.TABLE} (transcript, audio_blob) VALUES (?, ?)",
                (text, review_db.encode_blob(speech_like(text))),
            )
    port = free_port()
    app = create_app(db, access_token=token)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", db
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def served(tmp_path):
    yield from serve(tmp_path)


@pytest.fixture
def served_shared(tmp_path):
    yield from serve(tmp_path, token="shared-s3cret")


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


def test_a_token_shared_page_loads_styled_and_saves_through_its_session(served_shared, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, db = served_shared
    browser.get(url + "/?token=shared-s3cret")
    editor = browser.find_element(By.ID, "editor")
    wait_for(lambda: editor.get_attribute("value") == "the first recording to check")
    assert "token" not in browser.current_url  # dropped from the address (and so from history and referrers)
    background = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(246, 247, 249)"  # style.css loaded with the session cookie
    cookie = browser.get_cookie(SESSION_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and "s3cret" not in cookie["value"]

    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys("edited over a shared link")
    editor.send_keys(Keys.CONTROL, "s")

    def saved():
        with review_db.connect(db, readonly=True) as con:
            return con.execute(f"SELECT transcript FROM {review_db.TABLE} WHERE id = 1").fetchone()[0]

    wait_for(lambda: saved() == "edited over a shared link")


def test_hardest_first_follows_the_scores_and_shows_what_the_model_heard(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    url, db = served
    keys = {e.id: e.key for e in review_db.pending_entries(db)}
    scores = {1: 0.1, 2: 0.9, 3: 0.5}
    review_db.write_priorities(
        db,
        [
            {
                "entry_id": i,
                "entry_key": keys[i],
                "model": "whisper-assets v3",
                "hypothesis": f"what the model heard in {i}",
                "score": score,
                "reasons": '["model disagrees"]',
                "disagreement": 1.0,
                "logprob": -2.0,
                "word_logprob": -9.0,
                "chars_per_second": 12.0,
            }
            for i, score in scores.items()
        ],
        keep=scores,
    )
    browser.get(url + "/")
    wait_for(lambda: browser.find_element(By.ID, "entry-id").text == "1")
    Select(browser.find_element(By.ID, "order")).select_by_value("hardest")
    wait_for(lambda: browser.find_element(By.ID, "entry-id").text == "2")
    priority = browser.find_element(By.ID, "priority")
    assert priority.is_displayed() and "what the model heard in 2" in priority.text
    assert "0.90" in priority.text and "model disagrees" in priority.text
    browser.find_element(By.ID, "editor").send_keys(
        Keys.CONTROL, Keys.ENTER
    )  # save and next: the queue's next
    wait_for(lambda: browser.find_element(By.ID, "entry-id").text == "3")
