"""The web chat in a real browser: Playwright driving Debian's headless Chromium against a real
server. Each test saves a screenshot under test-output/ for a person to look at."""

import json
import statistics
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import ROOT, free_port, require

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:gradio.queueing"),
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUT = ROOT / "test-output"
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
PAYLOAD = "<img src=x onerror=alert(1)>"
BOT_MESSAGES = "#chat [data-testid=bot]"


@pytest.fixture(scope="module")
def feedback_file(tmp_path_factory):
    return tmp_path_factory.mktemp("state") / "feedback.jsonl"


@pytest.fixture(scope="module")
def server(feedback_file):
    from ctqa import Bot, Settings
    from ctqa.app import build_app

    app = build_app(Bot(settings=Settings.from_env(feedback_file=feedback_file)))
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    app.close()


@pytest.fixture(scope="module")
def browser():
    require(CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Watched:
    """A page whose dialogs and requests to hosts other than this machine are recorded."""

    def __init__(self, page):
        self.page = page
        self.dialogs: list[str] = []
        self.outside: list[str] = []
        page.on("dialog", self._dialog)
        page.on("request", self._request)

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _request(self, request):
        host = urlsplit(request.url).hostname
        if request.url.startswith(("http:", "https:", "ws:", "wss:")) and host not in (
            "127.0.0.1",
            "localhost",
        ):
            self.outside.append(request.url)


@pytest.fixture
def open_chat(browser, server):
    """Open the chat at a given window size and wait for its parts (not for network idle)."""
    watched = []

    def _open(viewport=None):
        page = browser.new_page(viewport=viewport or LAPTOP)
        w = Watched(page)
        watched.append(w)
        page.goto(server)
        page.wait_for_selector("#question textarea")
        page.wait_for_selector("#source .statement")
        return page

    yield _open
    for w in watched:
        assert w.dialogs == [], f"a dialog fired: {w.dialogs}"
        assert w.outside == [], f"requests left this machine: {w.outside}"
        w.page.close()


def ask(page, question: str) -> tuple[str, float]:
    """Type `question`, press Enter, wait for the reply; its text and the seconds it took."""
    before = page.locator(BOT_MESSAGES).count()
    box = page.locator("#question textarea")
    box.fill(question)
    started = time.perf_counter()
    box.press("Enter")
    page.wait_for_function(
        f"n => document.querySelectorAll('{BOT_MESSAGES}').length > n", arg=before
    )
    seconds = time.perf_counter() - started
    return page.locator(BOT_MESSAGES).last.inner_text(), seconds


def shot(page, name: str) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / name
    page.screenshot(path=str(path), full_page=True)
    return path


def marked(page) -> tuple[str, str]:
    """The source panel's highlighted sentence and the number of its paragraph ('¶3')."""
    target = page.locator("#source p.target")
    return target.locator("mark").inner_text(), target.locator(".pn").inner_text()


def test_ask_see_the_citation_and_its_passage_in_the_statement(open_chat):
    page = open_chat()
    reply, _ = ask(page, "Who led the French delegation?")
    assert "BERTOUX" in reply and "paragraph 3" in reply
    citations = page.locator("#citations label")
    assert citations.count() == 3
    assert citations.first.inner_text().startswith("1. ¶3 ·")
    sentence, paragraph = marked(page)  # the first citation is shown at once
    assert "Philippe BERTOUX" in sentence and paragraph == "¶3"

    second = citations.nth(1)
    number = second.inner_text().split("·")[0].split()[-1]  # "2. ¶8 · ..." -> "¶8"
    second.click()
    page.wait_for_function(
        "n => document.querySelector('#source p.target .pn')?.textContent === n", arg=number
    )
    sentence, paragraph = marked(page)
    assert paragraph == number and sentence
    assert page.locator("#source mark").count() == 1
    _assert_in_view(page.locator("#source mark"), page.locator("#source .statement"))
    shot(page, "chat-laptop.png")


def _assert_in_view(element, box):
    """`element` is scrolled into the visible part of the scrolling `box`."""
    e, b = element.bounding_box(), box.bounding_box()
    assert b["y"] <= e["y"] < b["y"] + b["height"], (e, b)


def test_the_whole_statement_can_be_read_without_asking(open_chat):
    page = open_chat()
    statement = page.locator("#source .statement")
    assert statement.locator(".pn").all_inner_texts() == [f"¶{n}" for n in range(1, 9)]
    assert "Philippe BERTOUX" in statement.inner_text()
    assert page.locator("#source mark").count() == 0
    shot(page, "chat-start.png")
    ask(page, "Where was the meeting held?")
    assert page.locator("#source mark").count() == 1
    page.locator("#reading input").click()  # read the statement again, nothing highlighted
    page.get_by_role("option", name="India France Joint Working Group").click()
    page.wait_for_function("() => !document.querySelector('#source mark')")
    assert "whole statement" in statement.locator(".meta").inner_text()


def test_an_example_is_asked_in_one_click(open_chat):
    page = open_chat()
    page.get_by_role("button", name="Where was the meeting held?").click()
    page.wait_for_selector(BOT_MESSAGES)
    assert "in Paris yesterday" in page.locator(BOT_MESSAGES).last.inner_text()
    assert page.locator("#question textarea").input_value() == ""


def test_a_follow_up_question_uses_the_conversation(open_chat):
    page = open_chat()
    ask(page, "Who led the Indian delegation?")
    reply, _ = ask(page, "And the French one?")
    assert "Searched for: Who led the Indian delegation? And the French one?" in reply
    assert "BERTOUX" in reply.split("Cited passages")[1].split("2.")[0]
    assert marked(page)[1] == "¶3"
    shot(page, "chat-follow-up.png")


def test_html_in_a_question_is_shown_as_text_and_never_runs(open_chat):
    page = open_chat()
    ask(page, PAYLOAD)
    asked = page.locator("#chat [data-testid=user]").last
    assert asked.inner_text().strip() == PAYLOAD
    assert page.locator("#chat img[src=x]").count() == 0
    page.wait_for_timeout(500)  # give an injected handler the time to fire, were there one
    shot(page, "chat-html-payload.png")  # open_chat asserts: no dialog, no outside request
    reply, _ = ask(page, "?")  # bad input: the message shows in the conversation
    assert "Cannot ask that" in reply and "no words" in reply


def test_an_abstention_says_so_and_labels_the_nearest_passages(open_chat):
    page = open_chat()
    reply, _ = ask(page, "What is the capital of Peru?")
    assert reply.startswith("The statements do not answer this question.")
    assert "do not answer the last question" in page.locator("#citations").inner_text()
    assert page.locator("#source .statement.nearest mark").count() == 1
    assert "does not answer" in page.locator("#source .meta").inner_text()
    shot(page, "chat-abstention.png")


def test_a_vote_on_a_reply_is_recorded(open_chat, feedback_file):
    page = open_chat()
    ask(page, "Where was the meeting held?")
    page.locator("#chat button[aria-label=Like]").last.click()
    deadline = time.monotonic() + 10
    while not feedback_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    entry = json.loads(feedback_file.read_text(encoding="utf-8").splitlines()[-1])
    assert entry["vote"] == "up" and entry["question"] == "Where was the meeting held?"
    assert entry["citations"][0]["paragraph"] == 3


def test_phone_width_stacks_the_sources_below_the_chat(open_chat):
    page = open_chat(PHONE)
    reply, _ = ask(page, "Who led the Indian delegation?")
    assert "Mahaveer Singhvi" in reply
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways: {width}px"
    chat, source = page.locator("#chat").bounding_box(), page.locator("#source").bounding_box()
    assert source["y"] > chat["y"] + chat["height"] - 1 and source["width"] > 300
    assert page.locator("#source mark").is_visible()
    shot(page, "chat-phone.png")


def test_time_from_enter_to_answer(open_chat, capsys):
    page = open_chat()
    ask(page, "Who led the Indian delegation?")  # warm up: the first search loads lazy parts
    questions = [
        "Where was the meeting held?",
        "Which terrorist groups were named?",
        "What did India and France say about Afghanistan?",
        "Did they discuss terror financing?",
        "Which anniversaries did the meeting mark?",
        "What did they say about banning terrorist groups?",
        "What is the capital of Peru?",
    ]
    seconds = [ask(page, q)[1] for q in questions]
    median = statistics.median(seconds)
    line = (
        f"Enter-to-answer in the browser: median {median * 1000:.0f} ms over {len(seconds)} "
        f"questions (min {min(seconds) * 1000:.0f}, max {max(seconds) * 1000:.0f})"
    )
    OUT.mkdir(exist_ok=True)
    (OUT / "enter-to-answer.txt").write_text(line + "\n", encoding="utf-8")
    with capsys.disabled():
        print(f"\n{line}")
    shot(page, "chat-timing.png")
