"""The web chat in a real browser: Playwright driving Debian's headless Chromium against a real
server. Each test saves a screenshot under test-output/ for a person to look at."""

import contextlib
import json
import statistics
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import ROOT, require, serving

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
USER_MESSAGES = "#chat [data-testid=user]"


@pytest.fixture(scope="module")
def feedback_file(tmp_path_factory):
    return tmp_path_factory.mktemp("state") / "feedback.jsonl"


@pytest.fixture(scope="module")
def server(feedback_file):
    from ctqa import Bot, Settings

    with serving_chat(Bot(settings=Settings.from_env(feedback_file=feedback_file))) as url:
        yield url


def serving_chat(bot, app=None):
    """The chat over `bot` (or `app`), served as `ctqa serve` serves it; a context manager
    yielding its URL."""
    from ctqa.app import build_app

    return serving(app or build_app(bot), bot)


@pytest.fixture(scope="module")
def browser():
    require(CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Watched:
    """A page whose dialogs, requests and requests to hosts other than this machine are
    recorded; the latter are also stopped, so that nothing can leave even by mistake."""

    def __init__(self, page):
        self.page = page
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.outside: list[str] = []
        page.on("dialog", self._dialog)
        page.on("request", self._request)
        page.route(lambda url: _leaves(url), lambda route: route.abort())

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _request(self, request):
        self.requests.append(request.url)
        if _leaves(request.url):
            self.outside.append(request.url)


def _leaves(url: str) -> bool:
    """Whether a request for `url` would go to another machine."""
    parts = urlsplit(url)
    local = parts.hostname in ("127.0.0.1", "localhost")
    return parts.scheme in ("http", "https", "ws", "wss") and not local


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


def test_a_follow_up_question_uses_the_conversation_until_it_is_cleared(open_chat):
    page = open_chat()
    ask(page, "Who led the Indian delegation?")
    reply, _ = ask(page, "And the French one?")
    assert "Searched for: Who led the Indian delegation? And the French one?" in reply
    assert "BERTOUX" in reply.split("Cited passages")[1].split("2.")[0]
    switched, _ = ask(page, "What did they say about Afghanistan?")  # a new subject
    assert "Searched for" not in switched and "Afghan territory" in switched
    page.locator("#chat").get_by_role("button", name="Clear").click()
    page.wait_for_function(f"() => !document.querySelector('{BOT_MESSAGES}')")
    afresh, _ = ask(page, "And the French one?")
    assert "Searched for" not in afresh  # nothing before it to lean on
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


def test_every_question_is_answered_and_the_time_to_answer_is_printed(open_chat, capsys):
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
    replies, seconds = zip(*(ask(page, q) for q in questions), strict=True)
    # each question got its own reply: an answer citing the statement, or a decline
    assert all("Cited passages" in r or "do not answer" in r for r in replies)
    assert "do not answer" in replies[-1] and "Cited passages" in replies[0]
    assert page.locator(BOT_MESSAGES).count() == len(questions) + 1
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


# ---- hostile content -------------------------------------------------------------------------

# Each paragraph carries a different way into a page; none of them may work.
HOSTILE_PARAGRAPHS = [
    (
        "The ministers met in Geneva {} to agree on sharing river water.",
        "<script>alert('passage-script')</script>",
    ),
    (
        "The annex on river flows {} lists every gauging station.",
        "<img src=x onerror=alert('passage-img')>",
    ),
    (
        "Farmers can read the irrigation annex {}.",
        "[here](javascript:alert('passage-link')) or <a href=\"javascript:alert('a')\">here</a>",
    ),
    ("The rainfall chart {} shows a dry decade.", "![rainfall](https://evil.example/rain.png)"),
    (
        "The delegates condemned drought profiteering {} in strong terms.",
        "<style>body { display: none }</style>",
    ),
    (
        "A budget of {} million was approved for new dams.",
        "$$\\href{javascript:alert('katex')}{ten}$$ <svg onload=alert('passage-svg')></svg>",
    ),
]
HOSTILE_TITLE = "<img src=x onerror=alert('title')>"
HOSTILE_QUESTIONS = [
    "<script>alert('q-script')</script> Where did the ministers meet?",
    "What does the annex on river flows list? <img src=x onerror=alert('q-img')>",
    "[Where](javascript:alert('q-link')) can farmers read the irrigation annex?",
    "What does the rainfall chart show? ![q](https://evil.example/q.png)",
    "<style>#chat { display: none }</style> What did the delegates condemn?",
    "Which budget was approved for new dams?",
]
# Elements a payload would create if the page took it as HTML (Gradio's own icons are SVGs
# with a <style> inside).
INJECTED = (
    "script, img, iframe, object, embed, svg[onload], style:not(svg *), "
    "a[href^='javascript' i], [onerror], [onload], [onclick]"
)


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory, feedback_file):
    """The chat over two statements whose text and title carry script, images and styles."""
    from ctqa import Bot, Settings

    folder = tmp_path_factory.mktemp("hostile")
    corpus = folder / "statements"
    corpus.mkdir()
    body = "\n\n".join(text.format(payload) for text, payload in HOSTILE_PARAGRAPHS)
    (corpus / "river-water.txt").write_text(f"date 2024-01-01\n{body}\n", encoding="utf-8")
    (corpus / f"{HOSTILE_TITLE}.txt").write_text(
        "date 2024-02-02\nThe canal <b>authority</b> will publish its accounts.\n",
        encoding="utf-8",
    )
    settings = Settings.from_env(feedback_file=feedback_file)
    with serving_chat(
        Bot(corpus, folder / "index", settings=settings, log=lambda msg: None)
    ) as url:
        yield url


def test_hostile_questions_and_statements_are_shown_as_text_and_never_run(browser, hostile_server):
    from ctqa.corpus import title_from_name

    page = browser.new_page(viewport=LAPTOP)
    watched = Watched(page)
    page.goto(hostile_server)
    page.wait_for_selector("#question textarea")
    page.wait_for_selector("#source .statement")
    for question in HOSTILE_QUESTIONS:
        reply, _ = ask(page, question)
        assert not reply.startswith("Cannot ask that"), reply
        asked = page.locator("#chat [data-testid=user]").last.inner_text().strip()
        assert asked == question  # shown literally, tags and all
    page.locator("#filter").scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # give an injected handler the time to fire, were there one
    shot(page, "hostile-content.png")

    assert watched.dialogs == [], f"a script ran: {watched.dialogs}"
    assert watched.outside == [], f"requests left this machine: {watched.outside}"
    stray = [u for u in watched.requests if "evil" in u or urlsplit(u).path.endswith("/x")]
    assert stray == [], f"a payload made the page fetch: {stray}"
    for area in ("#chat", "#source .statement", "#citations", "#filter", "#reading"):
        found = page.locator(area).first.locator(INJECTED).count()
        assert found == 0, f"{area} holds {found} injected element(s)"
    assert page.locator("#chat").is_visible() and page.locator("#source .statement").is_visible()

    statement = page.locator("#source .statement").inner_text()
    replies = "\n".join(page.locator(BOT_MESSAGES).all_inner_texts())
    for _, payload in HOSTILE_PARAGRAPHS:
        assert payload in statement  # the source panel shows the statement's text as written
    assert sum(payload in replies for _, payload in HOSTILE_PARAGRAPHS) >= 3  # and the quotes
    assert title_from_name(HOSTILE_TITLE) in page.locator("#filter").inner_text()
    page.close()


def test_a_full_queue_tells_the_visitor_the_app_is_busy(browser, fake_bot):
    from gradio_client import Client

    from ctqa.app import build_app

    app = build_app(fake_bot, queue_size=1, concurrency=1)
    with held_page(browser, fake_bot, app) as (page, url, gate, entered):
        other = Client(url, verbose=False, analytics_enabled=False)
        jobs = [other.submit("Where was the meeting held?", api_name="/chat")]
        assert reached(page, entered)  # one answer under way, held at the gate
        jobs.append(other.submit("Where was the meeting held?", api_name="/chat"))
        wait_until_full(page, app)  # and one waiting
        page.locator("#question textarea").fill("Who led the French delegation?")
        page.locator("#question textarea").press("Enter")
        busy = page.get_by_text("This application is currently busy. Please try again.")
        busy.first.wait_for()
        page.wait_for_timeout(400)  # let the notice finish fading in for the screenshot
        shot(page, "chat-busy.png")
        gate.set()
        assert all("in Paris yesterday" in job.result(timeout=120) for job in jobs)
        reply, _ = ask(page, "Who led the French delegation?")  # served again once it drains
        assert "BERTOUX" in reply


@contextlib.contextmanager
def held_page(browser, bot, app=None):
    """The chat over `bot` (or `app`) whose answers wait at a gate, open in a page: yields
    (page, url, gate, entered); `entered` is released as each answer reaches the gate."""
    gate, entered = threading.Event(), threading.Semaphore(0)
    answer = bot.answer

    def held(*args, **kwargs):
        entered.release()
        gate.wait(timeout=300)
        return answer(*args, **kwargs)

    bot.answer = held
    with serving_chat(bot, app) as url:
        page = browser.new_page(viewport=LAPTOP)
        watched = Watched(page)
        page.goto(url)
        page.wait_for_selector("#question textarea")
        try:
            yield page, url, gate, entered
        finally:
            gate.set()
        assert watched.dialogs == [] and watched.outside == []
        page.close()


def wait_until_full(page, app, seconds: float = 120) -> None:
    """Until a question waits in `app`'s queue (with a queue of 1: it is full)."""
    deadline = time.monotonic() + seconds
    while len(app._queue) < 1:
        assert time.monotonic() < deadline, "no question ever queued"
        page.wait_for_timeout(50)


@pytest.fixture
def held_chat(browser, fake_bot):
    """A page over a bot whose answers wait at a gate: (page, gate, entered)."""
    with held_page(browser, fake_bot) as (page, _, gate, entered):
        yield page, gate, entered


def reached(page, entered, seconds: float = 120) -> bool:
    """Whether an answer reached the gate within `seconds`. Waits in the browser's own time:
    the page's requests pass `Watched`'s filter only while Playwright is called."""
    deadline = time.monotonic() + seconds
    while not entered.acquire(blocking=False):
        if time.monotonic() > deadline:
            return False
        page.wait_for_timeout(50)
    return True


def test_a_reply_on_its_way_when_the_chat_is_cleared_is_not_shown(held_chat):
    page, gate, entered = held_chat
    gate.set()
    ask(page, "Who led the Indian delegation?")
    gate.clear()
    page.locator("#question textarea").fill("And the French one?")
    page.locator("#question textarea").press("Enter")
    assert reached(page, entered) and reached(page, entered)  # the second question, held
    page.locator("#chat").get_by_role("button", name="Clear").click()
    page.wait_for_function(f"() => !document.querySelector('{BOT_MESSAGES}')")
    gate.set()
    page.wait_for_timeout(1500)  # the held reply is done by now; it must not come back
    assert page.locator(BOT_MESSAGES).count() == 0
    reply, _ = ask(page, "And the French one?")
    assert "Searched for" not in reply and page.locator(BOT_MESSAGES).count() == 1


def test_an_example_clicked_before_the_reply_keeps_both_exchanges_in_order(held_chat):
    page, gate, entered = held_chat
    page.locator("#question textarea").fill("Who led the Indian delegation?")
    page.locator("#question textarea").press("Enter")
    assert reached(page, entered)  # the first question, held
    page.get_by_role("button", name="Where was the meeting held?").click()
    page.wait_for_timeout(500)  # the example's question reaches the server, and waits
    gate.set()
    both = ["Who led the Indian delegation?", "Where was the meeting held?"]
    shows_both = f"""() => document.querySelectorAll('{BOT_MESSAGES}').length == 2
        && JSON.stringify([...document.querySelectorAll('{USER_MESSAGES}')]
            .map(m => m.innerText.trim())) == JSON.stringify({json.dumps(both)})"""
    page.wait_for_function(shows_both)
    # The first reply can reach the page after the second and draw the chat without it; the
    # page then catches up with the server (ChatService.catch_up). Both replies are in by now.
    page.wait_for_timeout(1500)
    page.wait_for_function(shows_both, timeout=15_000)
    asked = page.locator(USER_MESSAGES).all_inner_texts()
    assert [a.strip() for a in asked] == both


def test_a_full_queue_still_opens_the_page_and_clears_a_chat(browser, fake_bot):
    from gradio_client import Client

    from ctqa.app import build_app

    app = build_app(fake_bot, queue_size=1, concurrency=1)
    with held_page(browser, fake_bot, app) as (page, url, gate, entered):
        gate.set()
        ask(page, "Who led the Indian delegation?")
        assert entered.acquire(blocking=False)  # that answer passed the gate
        gate.clear()
        other = Client(url, verbose=False, analytics_enabled=False)
        jobs = [other.submit("Where was the meeting held?", api_name="/chat")]
        assert reached(page, entered)  # held, answering
        jobs.append(other.submit("Where was the meeting held?", api_name="/chat"))
        wait_until_full(page, app)
        late = browser.new_page(viewport=LAPTOP)
        late_watched = Watched(late)
        late.goto(url)
        late.wait_for_selector("#source .statement")
        page.locator("#chat").get_by_role("button", name="Clear").click()
        page.wait_for_function(f"() => !document.querySelector('{BOT_MESSAGES}')")
        page.wait_for_timeout(500)
        busy = "This application is currently busy"
        assert late.get_by_text(busy).count() == 0 and page.get_by_text(busy).count() == 0
        gate.set()
        assert all("in Paris yesterday" in job.result(timeout=120) for job in jobs)
        reply, _ = ask(page, "And the French one?")
        assert "Searched for" not in reply  # the clear was heard: nothing before it to lean on
        assert late_watched.dialogs == [] and late_watched.outside == []
        late.close()
