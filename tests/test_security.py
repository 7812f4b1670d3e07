"""Robust and safe: bad input at every entry point, many users at once, a full queue, and nothing
exposed (file routes, request sizes, logins, binding, outbound connections).

Real parts throughout: the bundled model, Gradio servers on free loopback ports, gradio_client,
raw HTTP, and `ctqa serve` in a subprocess. The fake encoder is used only where a test must
count encoder calls or hold an answer back."""

import http.client
import importlib.util
import ipaddress
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, free_port, require, serving
from gradio_client import Client

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:gradio.queueing"),
]

FRENCH = "Who led the French delegation?"
REFUSED = "**Cannot ask that:**"


def connect(url: str, **kwargs) -> Client:
    return Client(url, verbose=False, analytics_enabled=False, download_files=False, **kwargs)


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    from ctqa import Bot, Settings

    state = tmp_path_factory.mktemp("state")
    return Bot(settings=Settings.from_env(feedback_file=state / "feedback.jsonl"))


@pytest.fixture(scope="module")
def app(bot):
    from ctqa.app import build_app

    return build_app(bot)


@pytest.fixture(scope="module")
def server(app, bot):
    with serving(app, bot) as url:
        yield url


@pytest.fixture
def client(server):
    return connect(server)


def still_answers(url: str) -> None:
    assert "BERTOUX" in connect(url).predict(FRENCH, api_name="/chat")


# ---- bad input, refused before any encoding -------------------------------------------------

BAD = [
    ({"question": ""}, "the question is empty"),
    ({"question": " \n\t "}, "the question is empty"),
    ({"question": "x" * 1_000_000}, "1,000,000 characters long, over the limit of 1,000"),
    ({"question": "who" + " " * 1000 + "led"}, "over the limit of 1,000"),  # as the box counts
    ({"question": "who\x00led"}, "control characters"),
    ({"question": "who\x1b[31mled"}, "control characters"),
    ({"question": "who\ud800led"}, "lone surrogates"),
    ({"question": "?!"}, "no words"),
    ({"question": 5}, "must be text, not int"),
    ({"question": None}, "must be text, not NoneType"),
    ({"question": b"who"}, "must be text, not bytes"),
    ({"question": ["who"]}, "must be text, not list"),
    ({"question": {"text": "who"}}, "must be text, not dict"),
    ({"k": 0}, "whole number from 1 to 20, not 0"),
    ({"k": -1}, "not -1"),
    ({"k": 10**30}, "not 1000000000000000000000000000000"),
    ({"k": "abc"}, "not 'abc'"),
    ({"k": 2.5}, "not 2.5"),
    ({"k": float("nan")}, "not nan"),
    ({"k": float("inf")}, "not inf"),
    ({"k": None}, "not None"),
    ({"k": True}, "not True"),
    ({"history": "Who led?"}, "history must be a list"),
    ({"history": [1, 2]}, "history entries must be strings or chat messages"),
    ({"history": [{"role": "user"}]}, "history entries must be strings or chat messages"),
    ({"documents": "india"}, "documents must be a list of statement ids"),
    ({"documents": 5}, "documents must be a list of statement ids"),
    ({"documents": [["nested"]]}, "documents must be a list of statement ids"),
    ({"documents": [f"no-{i}" for i in range(1000)]}, "and 995 more"),
]


def _call(question=FRENCH, history=None, k=3, documents=None) -> dict:
    return {"question": question, "history": history, "k": k, "documents": documents}


@pytest.fixture
def counted(fake_bot, fake_encoder):
    """A chat service over the fake encoder, and how many texts it had encoded when ready."""
    from ctqa.chat import ChatService

    service = ChatService(fake_bot)
    return service, len(fake_encoder.encoded)


@pytest.mark.parametrize("given, message", BAD, ids=lambda v: repr(v)[:40])
def test_bad_input_is_refused_with_a_message_before_any_encoding(
    counted, fake_encoder, given, message
):
    service, encoded = counted
    reply = service.api_chat(**_call(**given))
    assert reply.startswith(REFUSED) and message in reply
    assert len(fake_encoder.encoded) == encoded  # refused before the model saw anything


# What the page itself can send: text from the box, a whole number from the slider.
PAGE_BAD = [
    (g, m)
    for g, m in BAD
    if set(g) <= {"question", "k"}
    and isinstance(g.get("question", ""), str)
    and isinstance(g.get("k", 3), int)
]


@pytest.mark.parametrize("given, message", PAGE_BAD, ids=lambda v: repr(v)[:40])
def test_the_page_shows_a_refusal_in_the_conversation(counted, fake_encoder, given, message):
    service, encoded = counted
    call = _call(**given)
    box, messages, *_ = service.respond(call["question"], [], call["k"], [], [])
    asked, reply = messages
    assert box == "" and asked["role"] == "user" and reply["role"] == "assistant"
    assert reply["content"].startswith(REFUSED) and message in reply["content"]
    assert "\x00" not in asked["content"] and "\ud800" not in asked["content"]
    assert len(fake_encoder.encoded) == encoded


def test_an_enormous_history_is_cut_to_its_last_turns(counted, fake_encoder):
    from ctqa.conversation import FOLLOWED

    service, encoded = counted
    history = [{"role": "user", "content": f"question {i}"} for i in range(100_000)]
    reply = service.api_chat("Where was the meeting held?", history=history)
    assert not reply.startswith(REFUSED)
    # the last few questions are followed, two searches each, whatever the history's size
    assert len(fake_encoder.encoded) <= encoded + 1 + 2 * FOLLOWED


def test_the_question_box_and_the_server_have_the_same_limit(client, bot):
    limit = bot.settings.max_question_chars
    box = next(c for c in client.config["components"] if c["props"].get("elem_id") == "question")
    assert box["props"]["max_length"] == limit
    at_limit = ("Paris " * limit)[:limit]
    assert not client.predict(at_limit, api_name="/chat").startswith(REFUSED)
    over = client.predict(at_limit + "x", api_name="/chat")
    assert over.startswith(REFUSED) and f"over the limit of {limit:,}" in over


# ---- bad input through the real server ------------------------------------------------------


def _json_can_carry(given: dict) -> bool:
    """gradio_client sends strict JSON: no bytes, NaN, infinity or lone surrogate (those go
    through `test_raw_api_calls_of_any_shape_get_a_clean_answer_or_error`)."""
    question, k = given.get("question", ""), given.get("k", 3)
    return not (
        isinstance(question, bytes)
        or (isinstance(question, str) and "\ud800" in question)
        or (isinstance(k, float) and not k < float("inf"))
    )


API_BAD = [(g, m) for g, m in BAD if _json_can_carry(g)]


@pytest.mark.parametrize("given, message", API_BAD, ids=lambda v: repr(v)[:40])
def test_api_refuses_bad_values_with_a_message_and_keeps_answering(client, given, message):
    reply = client.predict(*_call(**given).values(), api_name="/chat")
    assert reply.startswith(REFUSED) and message in reply
    assert "BERTOUX" in client.predict(FRENCH, api_name="/chat")


def _raw_call(url: str, api: str, body: bytes) -> tuple[int, str]:
    """POST `body` as it is to the REST API and read the event's outcome."""
    headers = {"content-type": "application/json"}
    posted = httpx.post(f"{url}gradio_api/call/{api}", content=body, headers=headers, timeout=60)
    if posted.status_code != 200:
        return posted.status_code, posted.text
    event = posted.json()["event_id"]
    outcome = httpx.get(f"{url}gradio_api/call/{api}/{event}", timeout=120)
    return outcome.status_code, outcome.text


@pytest.mark.parametrize(
    "api, body, expected",
    [
        ("chat", rb'{"data": ["who\ud800led", null, 3, null]}', "lone surrogates"),
        ("chat", rb'{"data": ["who", null, NaN, null]}', "not nan"),
        ("chat", rb'{"data": ["who", null, Infinity, null]}', "not inf"),
        ("ask", rb'{"data": ["who\ud800led", [], 3, [], null]}', "lone surrogates"),
        ("ask", b'{"data": ["\\u0000", [], 3, [], null]}', "control characters"),
        ("chat", b'{"data": ["who"]}', "event: error"),  # too few values
        ("chat", b'{"data": "who"}', "valid list"),
        ("chat", b"not json", "JSON decode error"),
        ("ask", b'{"data": ["who", "not a chat", 3, [], null]}', "event: error"),
        ("ask", b'{"data": ["who", [1, 2], 3, [], null]}', "event: error"),
        ("ask", b'{"data": ["who", [], "abc", [], null]}', "event: error"),
        ("ask", b'{"data": ["who", [], 3, ["nope"], null]}', "not in the list of choices"),
    ],
    ids=lambda v: v.decode()[:40] if isinstance(v, bytes) else str(v)[:40],
)
def test_raw_api_calls_of_any_shape_get_a_clean_answer_or_error(server, api, body, expected):
    status, text = _raw_call(server, api, body)
    assert status in (200, 422), (status, text)
    assert expected in text
    for leak in ("Traceback", "site-packages", str(ROOT)):
        assert leak not in text  # no internals in what a caller sees
    still_answers(server)


def test_request_bodies_over_the_cap_are_refused_without_reading_them(server):
    from ctqa.server import MAX_BODY_BYTES

    url = f"{server}gradio_api/queue/join"
    big = b"x" * (MAX_BODY_BYTES + 1)
    declared = httpx.post(url, content=big, headers={"content-type": "application/json"})
    assert declared.status_code == 413
    chunked = httpx.post(url, content=iter([big[: 2**20]] * 5))  # no declared length
    assert chunked.status_code == 413
    still_answers(server)


# ---- a full queue ----------------------------------------------------------------------------


class Gated:
    """A bot whose answers wait until the test opens the gate."""

    def __init__(self, bot):
        self.bot, self.settings = bot, bot.settings
        self.load, self.documents = bot.load, bot.documents
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)

    def answer(self, *args, **kwargs):
        self.entered.release()
        self.gate.wait(timeout=300)
        return self.bot.answer(*args, **kwargs)


def test_a_full_queue_turns_callers_away_at_once_and_then_serves_again(fake_bot):
    from gradio_client.utils import QueueError

    from ctqa.app import build_app
    from ctqa.chat import reply_markdown

    gated = Gated(fake_bot)
    app = build_app(gated, queue_size=2, concurrency=1)
    question = "Where was the meeting held?"
    expected = reply_markdown(fake_bot.answer(question))
    with serving(app, fake_bot) as url:
        session = connect(url)
        answering = session.submit(question, api_name="/chat")
        assert gated.entered.acquire(timeout=120)  # one answer under way, held at the gate
        waiting = [session.submit(question, api_name="/chat") for _ in range(2)]
        status = f"{url}gradio_api/queue/status"  # Gradio's own count of the waiting events
        _wait_for(lambda: httpx.get(status).json()["queue_size"] == 2)
        with pytest.raises(QueueError, match="Queue is full! Please try again."):
            connect(url).predict(question, api_name="/chat")
        join = httpx.post(
            f"{url}gradio_api/queue/join",
            json={
                "data": [question, None, 3, None],
                "fn_index": _fn(session, "chat"),
                "session_hash": "a-caller-without-gradio-client",
            },
        )
        assert join.status_code == 503 and "Queue is full" in join.text, join.text
        gated.gate.set()
        assert [job.result(timeout=120) for job in [answering, *waiting]] == [expected] * 3
        assert connect(url).predict(question, api_name="/chat") == expected


def test_the_shipped_queue_is_bounded(app):
    from ctqa.config import CONCURRENCY, QUEUE_SIZE

    assert app._queue.max_size == QUEUE_SIZE
    limits = {fn.concurrency_id: fn.concurrency_limit for fn in app.fns.values()}
    assert limits["answering"] in (CONCURRENCY, "default")
    assert app._queue.default_concurrency_limit == CONCURRENCY


def _fn(session: Client, api_name: str) -> int:
    return next(d["id"] for d in session.config["dependencies"] if d.get("api_name") == api_name)


def _wait_for(condition, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


# ---- many users at once ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def loadtest():
    spec = importlib.util.spec_from_file_location(
        "loadtest", ROOT / "eval" / "bench" / "loadtest.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["loadtest"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_answers_from_16_threads_match_a_sequential_run(loadtest):
    from concurrent.futures import ThreadPoolExecutor

    from ctqa import answer

    questions = loadtest.load_questions(50)
    assert len(questions) == 50
    sequential = [answer(q) for q in questions]

    def ask_all(offset: int) -> list:
        order = questions[offset:] + questions[:offset]  # threads ask in different orders
        got = [answer(q) for q in order]
        return got[-offset:] + got[:-offset] if offset else got

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(ask_all, range(0, 16 * 3, 3)))
    for got in results:
        assert got == sequential


def test_short_load_test_every_session_gets_the_sequential_answers(server, loadtest):
    deadline = time.monotonic() + 300
    expected = loadtest.reference(server, loadtest.load_questions(30), deadline)
    run = loadtest.sessions_at_once(server, expected, 10, 3, deadline)
    print(run.summary())
    assert run.errors == [] and run.different == [] and run.answered == 30


# ---- nothing exposed: file routes, extra routes ----------------------------------------------


def _get_raw(url: str, path: str, method: str = "GET", **headers) -> tuple[int, bytes]:
    """Request `path` exactly as written: no client-side normalising of '..' or '%2e'."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _private_files(bot) -> list[Path]:
    index = bot.index_dir / (bot.index_dir / "CURRENT").read_text().strip()
    return [next(bot.corpus.glob("*.txt")), index / "manifest.json", ROOT / "pyproject.toml"]


def _traversals(bot) -> list[str]:
    seed, manifest, project = _private_files(bot)
    up = "../" * 12
    paths = []
    for target in (seed, manifest, project, Path("/etc/passwd")):
        absolute = str(target)
        relative = os.path.relpath(target, ROOT)
        paths += [
            f"/gradio_api/file={absolute}",
            f"/gradio_api/file={relative}",
            f"/gradio_api/file={up}{absolute.lstrip('/')}",
            f"/gradio_api/file={up.replace('/', '%2f')}{absolute.lstrip('/')}",
            f"/gradio_api/file={up.replace('.', '%2e').replace('/', '%2f')}{absolute.lstrip('/')}",
            f"/gradio_api/file={up.replace('.', '%252e').replace('/', '%252f')}"
            f"{absolute.lstrip('/')}",
            f"/gradio_api/file=%2f{absolute.lstrip('/').replace('/', '%2f')}",
            f"/gradio_api/file/{up}{absolute.lstrip('/')}",
            f"/gradio_api/file={up.replace('/', '%5c')}{absolute.lstrip('/')}",
            f"/gradio_api/file={absolute}%00.png",
            f"/assets/{up}{absolute.lstrip('/')}",
            f"/static/{up.replace('.', '%2e')}{absolute.lstrip('/')}",
            f"/gradio_api/file=/{absolute.upper()}",
        ]
    return paths


SERVER_SIDE_FETCHES = [
    "/gradio_api/file=https://example.com/x.png",
    "/gradio_api/file=http://169.254.169.254/latest/meta-data/",
    "/gradio_api/file=HTTP%3A%2F%2Fexample.com%2Fx.png",
    "/gradio_api/file=http%253A%252F%252Fexample.com%252Fx.png",
    "/gradio_api/file=file:///etc/passwd",
    "/gradio_api/file/https://example.com/x.png",
    "/gradio_api/proxy=https://example.com/x.png",
]


def test_file_routes_never_serve_the_statements_the_index_or_anything_outside(server, bot):
    secrets = [p.read_bytes()[:60] for p in _private_files(bot)] + [b"root:x:0:0"]
    for path in _traversals(bot) + SERVER_SIDE_FETCHES:
        status, body = _get_raw(server, path)
        assert status in (400, 403, 404), (path, status, body[:200])
        assert not any(secret in body for secret in secrets), path
    still_answers(server)


def test_uploads_monitoring_and_run_history_are_closed(server):
    for method, path in [
        ("POST", "/gradio_api/upload"),
        ("GET", "/gradio_api/upload_progress?upload_id=x"),
        ("GET", "/monitoring"),
        ("GET", "/monitoring/summary"),
        ("GET", "/gradio_api/runs"),
        ("GET", "/gradio_api/run-history/records"),
        ("POST", "/gradio_api/run-history/connect"),
    ]:
        for headers in ({}, {"Host": "localhost"}):  # a forged Host passes no loopback check
            status, body = _get_raw(server, path, method, **headers)
            assert status in (403, 404, 405), (path, headers, status, body[:200])
    upload = httpx.post(f"{server}gradio_api/upload", files={"files": ("a.html", b"<b>x</b>")})
    assert upload.status_code == 403


def test_refused_path_sees_through_encodings():
    from ctqa.server import refused_path

    for path in SERVER_SIDE_FETCHES + ["/gradio_api/upload", "/gradio_api/upload_progress"]:
        assert refused_path(path), path
    for path in ["/", "/config", "/gradio_api/file=/tmp/gradio/x.png", "/gradio_api/info"]:
        assert not refused_path(path), path


# ---- logins ----------------------------------------------------------------------------------


def test_auth_file_lines_become_logins(tmp_path):
    from ctqa.errors import CtqaError
    from ctqa.server import read_auth_file

    good = tmp_path / "logins"
    good.write_text("# shared server\nalice:s3cret:with:colons\n\n bob : pw \n", encoding="utf-8")
    assert read_auth_file(good) == [("alice", "s3cret:with:colons"), ("bob", " pw ")]
    notepad = tmp_path / "notepad"  # Windows editors start a UTF-8 file with a byte-order mark
    notepad.write_bytes("user:pw\r\n".encode("utf-8-sig"))
    assert read_auth_file(notepad) == [("user", "pw")]
    for text, message in [("alice\n", "line 1: write it as user:password"), ("# none\n", "no")]:
        bad = tmp_path / "bad"
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(CtqaError, match=message):
            read_auth_file(bad)
    with pytest.raises(CtqaError, match="cannot read the password file"):
        read_auth_file(tmp_path / "missing")


def test_a_password_protects_the_page_and_the_api(bot):
    from ctqa.app import build_app

    with serving(build_app(bot), bot, auth=[("alice", "s3cret")]) as url:
        for path in ["config", "gradio_api/info", "gradio_api/openapi.json"]:
            assert httpx.get(url + path).status_code == 401, path
        join = httpx.post(f"{url}gradio_api/queue/join", json={"data": [FRENCH], "fn_index": 0})
        assert join.status_code == 401
        assert "BERTOUX" not in httpx.get(url).text
        wrong = httpx.post(f"{url}login", data={"username": "alice", "password": "guess"})
        assert wrong.status_code == 400
        with pytest.raises(Exception, match="(?i)login|auth|401"):
            connect(url).predict(FRENCH, api_name="/chat")
        assert "BERTOUX" in connect(url, auth=("alice", "s3cret")).predict(FRENCH, api_name="/chat")


# ---- `ctqa serve`: bound to this machine, talking to no other ----------------------------------

# Run as `python -c`: records every socket connection and name lookup that reaches beyond this
# machine, and every child process (which the hook cannot follow), then runs `ctqa`.
WATCHED_CTQA = r"""
import ipaddress, os, sys
log = open(os.environ["CTQA_NETWORK_LOG"], "a", buffering=1)

def local(host):
    if host in (None, "", "localhost", b"localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.decode() if isinstance(host, bytes) else host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified

def hook(event, args):
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        address = args[-1]
        if isinstance(address, tuple) and not local(address[0]):
            log.write(f"{event} {address!r}\n")
    elif event.startswith(("socket.getaddrinfo", "socket.gethostby")):
        if not local(args[0]):
            log.write(f"{event} {args[0]!r}\n")
    elif event in ("subprocess.Popen", "os.exec", "os.posix_spawn"):
        log.write(f"{event} {args[:2]!r}\n")

sys.addaudithook(hook)
sys.argv = ["ctqa", *sys.argv[1:]]
from ctqa.cli import main
sys.exit(main())
"""


def _listening(port: int) -> set[str]:
    """Addresses a socket of this machine listens on at `port`, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # the kernel prints each 32-bit word in host (little-endian) order
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(str(ipaddress.ip_address(words)))
    return found


def test_serve_listens_on_this_machine_only_and_connects_nowhere_else(tmp_path):
    require(Path("/proc/net/tcp").exists(), "no /proc/net/tcp to read listening sockets from")
    port, log = free_port(), tmp_path / "network.log"
    log.touch()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GRADIO_ANALYTICS_ENABLED", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")
    }  # ctqa itself must keep quiet, not the test's environment
    env |= {"CTQA_NETWORK_LOG": str(log), "XDG_STATE_HOME": str(tmp_path)}
    server = subprocess.Popen(
        [sys.executable, "-c", WATCHED_CTQA, "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "serve.err", "wb"),  # noqa: SIM115 (closed with the process)
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for(lambda: server.poll() is not None or _up(url), seconds=300)
        assert server.poll() is None, (tmp_path / "serve.err").read_text()[-2000:]
        assert _listening(port) == {"127.0.0.1"}
        assert "BERTOUX" in connect(url).predict(FRENCH, api_name="/chat")
        assert "ctqa" in httpx.get(url).text
        for path in SERVER_SIDE_FETCHES:
            assert _get_raw(url, path)[0] == 403
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    events = log.read_text().splitlines()
    children = [e for e in events if e.startswith(("subprocess", "os."))]
    # matplotlib (imported by Gradio) lists the local fonts with fc-list when its cache is new
    assert all("'fc-list'" in e for e in children), children
    assert [e for e in events if e not in children] == []  # no connection or lookup outside


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}config", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_load_test_refuses_a_server_beyond_this_machine(loadtest, capsys):
    with pytest.raises(SystemExit) as stopped:
        loadtest.main(["--url", "http://192.0.2.1:7860/"])
    assert stopped.value.code == 2
    assert "must be on this machine" in capsys.readouterr().err
    assert loadtest.is_loopback("http://[::1]:7860/") and loadtest.is_loopback("http://localhost/")


def test_history_parts_that_are_not_text_are_skipped(counted):
    service, _ = counted
    history = [
        {"role": "user", "content": [{"type": "text", "text": 5}, {"text": None}, "Who led?"]}
    ]
    reply = service.api_chat("Where was the meeting held?", history=history)
    assert not reply.startswith(REFUSED)
