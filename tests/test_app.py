"""The web chat through its API: a real server on a free loopback port, the real bot, and
gradio_client."""

import json

import httpx
import pytest
from conftest import serving
from gradio_client import Client

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:gradio.queueing"),
]

INDIAN = "Who led the Indian delegation?"


@pytest.fixture(scope="module")
def feedback_file(tmp_path_factory):
    return tmp_path_factory.mktemp("state") / "nested" / "feedback.jsonl"


@pytest.fixture(scope="module")
def bot(feedback_file):
    """The default corpus, with feedback going to a temporary file."""
    from ctqa import Bot, Settings

    return Bot(settings=Settings.from_env(feedback_file=feedback_file))


@pytest.fixture(scope="module")
def server(bot):
    from ctqa.app import build_app

    with serving(build_app(bot), bot) as url:
        yield url


@pytest.fixture
def client(server):
    return Client(server, verbose=False)


def test_answer_quotes_and_cites_the_statement(client):
    reply = client.predict("Who led the French delegation?", api_name="/chat")
    quote, _, sources = reply.partition("**Cited passages**")
    assert quote.startswith("> ") and "BERTOUX" in quote
    title = "*India France Joint Working Group on Counter Terrorism*, 2021-11-17"
    assert f"1. {title}, paragraph 3" in sources
    assert "Searched for" not in reply


@pytest.mark.parametrize(
    "question", ["Who led the French delegation?", "How many people died in the Mumbai attacks?"]
)
def test_the_cli_the_chat_and_the_api_give_the_same_reply(client, bot, question):
    import subprocess
    import sys

    from ctqa.chat import ChatService

    cli = subprocess.run(
        [sys.executable, "-m", "ctqa", "ask", question], capture_output=True, check=True
    )
    printed = cli.stdout.decode().rstrip("\n")
    _, messages, *_ = ChatService(bot).respond(question, [], 3, None, [])
    chat = messages[-1]["content"]
    api = client.predict(question, api_name="/chat")
    assert chat == api
    # the faces differ only in how they mark the answering sentence: bold, or <mark>
    assert api.replace("<mark>", "**").replace("</mark>", "**") == printed
    assert printed == bot.answer(question).text


def test_the_api_and_answer_take_the_same_turns(client, bot):
    from ctqa.render import html_mark, reply

    earlier = ["Who led the French delegation?", "What did they say about Afghanistan?"]
    messages = [{"role": "user", "content": q} for q in earlier]
    for history in (earlier, messages):
        api = client.predict("What is his title?", history=history, api_name="/chat")
        assert api == reply(bot.answer("What is his title?", history=earlier), html_mark)


def test_follow_up_uses_the_history(client):
    first = client.predict(INDIAN, api_name="/chat")
    history = [{"role": "user", "content": INDIAN}, {"role": "assistant", "content": first}]
    reply = client.predict("And the French one?", history=history, api_name="/chat")
    assert f"_Searched for: {INDIAN} And the French one?_" in reply
    first_source = reply.split("**Cited passages**")[1].strip().splitlines()[0]
    assert "paragraph 3" in first_source and "BERTOUX" in first_source


def test_k_sets_the_number_of_citations(client):
    reply = client.predict("Where was the meeting held?", k=1, api_name="/chat")
    assert "\n1. " in reply and "\n2. " not in reply


def test_a_question_the_statements_do_not_answer_is_abstained_on(client):
    reply = client.predict("What is the capital of Peru?", api_name="/chat")
    assert reply.startswith("**The statements do not answer this question.**")
    assert "they do **not** answer it" in reply
    assert "**Cited passages**" not in reply


@pytest.mark.parametrize(
    "question, message",
    [
        ("", "the question is empty"),
        ("   ", "the question is empty"),
        ("x" * 5000, "over the limit of 1,000"),
        ("\x00", "control characters"),
    ],
)
def test_bad_input_gets_a_clear_message_and_the_server_keeps_answering(client, question, message):
    reply = client.predict(question, api_name="/chat")
    assert reply.startswith("**Cannot ask that:**") and message in reply
    assert "BERTOUX" in client.predict("Who led the French delegation?", api_name="/chat")


def test_unknown_statement_filter_is_refused_plainly(client):
    reply = client.predict(INDIAN, documents=["no-such-statement"], api_name="/chat")
    assert reply.startswith("**Cannot ask that:** unknown statement id(s) no-such-statement")


def test_html_in_a_question_is_echoed_as_text(client):
    payload = "<img src=x onerror=alert(1)>"
    reply = client.predict(payload, api_name="/chat")
    assert "<img" not in reply
    assert "<img" not in client.predict(f"And {payload}?", history=[INDIAN], api_name="/chat")
    # an earlier question's HTML, echoed in "Searched for: ..." when a follow-up leans on it
    earlier = f"{INDIAN} {payload}"
    follow_up = client.predict("And the French one?", history=[earlier], api_name="/chat")
    assert follow_up.startswith("_Searched for:")
    assert "<img" not in follow_up and "&lt;img src=x onerror=alert(1)&gt;" in follow_up
    # the page's own event echoes the question into the conversation, escaped
    _, messages, *_ = client.predict(payload, [], 3, [], api_name="/ask")
    shown = messages[-2]["content"][0]["text"]
    assert shown == "&lt;img src=x onerror=alert(1)&gt;"


def test_page_event_returns_the_source_panel_with_the_passage_marked(client):
    _, messages, picker, panel, reading = client.predict(INDIAN, [], 3, [], api_name="/ask")
    assert messages[-1]["role"] == "assistant"
    assert picker["value"] == "0" and picker["choices"][0][0].startswith("1. ¶3 ·")
    assert "<mark>Mahaveer Singhvi" in panel and panel.count("<mark>") == 1
    assert reading["value"] == "india-france-joint-working-group-on-counter-terrorism"
    assert [i for _, i in reading["choices"]] == [reading["value"]]  # the statements indexed now


def test_a_vote_on_a_reply_is_appended_to_the_feedback_file(server, client, feedback_file, bot):
    client.predict(INDIAN, [], 3, [], api_name="/ask")  # this session's first reply: message 1
    _like(server, client, message=1, liked=False)
    entry = json.loads(feedback_file.read_text(encoding="utf-8").splitlines()[-1])
    assert entry["vote"] == "down" and entry["question"] == INDIAN
    cited = bot.answer(INDIAN).citations
    assert entry["citations"] == [
        {"doc": c.doc_id, "paragraph": c.paragraph, "start": c.start, "end": c.end} for c in cited
    ]
    assert entry["citations"][0]["paragraph"] == 3
    assert entry["time"].endswith("+00:00")


def _like(server: str, client: Client, message: int, liked: bool) -> None:
    """Send the chat's like event as the browser does: gradio_client cannot carry event data."""
    dep = next(d for d in client.config["dependencies"] if d.get("api_name") == "vote")
    body = {
        "data": [None],
        "event_data": {"index": message, "value": "", "liked": liked},
        "fn_index": dep["id"],
        "trigger_id": dep["targets"][0][0],
        "session_hash": client.session_hash,
    }
    httpx.post(f"{server}gradio_api/queue/join", json=body, timeout=30).raise_for_status()
    url = f"{server}gradio_api/queue/data"
    with httpx.stream("GET", url, params={"session_hash": client.session_hash}, timeout=30) as r:
        for line in r.iter_lines():
            if "process_completed" in line:
                assert '"success":true' in line.replace(" ", ""), line
                return
    raise AssertionError("the vote was never completed")


def _props(client: Client, elem_id: str) -> dict:
    return next(
        c["props"] for c in client.config["components"] if c["props"].get("elem_id") == elem_id
    )


def test_one_statement_needs_no_filter(client, bot):
    assert _props(client, "filter")["visible"] is False
    assert _props(client, "k")["maximum"] == bot.settings.max_k


def test_several_statements_can_be_filtered(bot, corpus, tmp_path):
    from ctqa import Bot
    from ctqa.app import build_app

    two = Bot(corpus, tmp_path / "index", settings=bot.settings, encoder=bot.load().encoder)
    with serving(build_app(two), two) as url:
        client = Client(url, verbose=False)
        shown = _props(client, "filter")
        assert shown["visible"] is True and len(shown["choices"]) == 2
        space = ["space-cooperation"]
        reply = client.predict(
            "When will the joint satellite be launched?", documents=space, api_name="/chat"
        )
        assert "joint satellite in 2025" in reply and "Counter Terrorism" not in reply
        reply = client.predict("Who led the French delegation?", documents=space, api_name="/chat")
        assert "BERTOUX" not in reply
