"""Load test of the web chat: many gradio_client sessions at once against `ctqa serve`.

Starts `ctqa serve` on a free loopback port (or uses `--url`, which must be on this machine),
asks every question once in a row for reference answers, then:

1. `--clients` sessions at once, each asking `--questions` questions one after another: latency
   p50/p95/max, errors, throughput, and every reply compared with the reference;
2. `--overload` callers at once, one question each, more than the server's queue admits: those
   turned away are told at once that the app is busy, and the rest are answered right.

Bounded: a fixed number of questions, and `--timeout` seconds for everything. Exits non-zero
when a reply differs, a request fails, or the overload run turns nobody away.

    python eval/bench/loadtest.py                      # make loadtest
    python eval/bench/loadtest.py --clients 10 --questions 3 --overload 0
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ctqa.evaluate import percentile

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[2]
QUESTION_FILES = ("statement/answerable.jsonl", "statement/unanswerable.jsonl")


@dataclass
class Run:
    """What the concurrent sessions saw."""

    sessions: int
    per_session: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return len(self.latencies)

    def summary(self) -> str:
        ms = sorted(t * 1000 for t in self.latencies) or [0.0]
        p95 = percentile(ms, 0.95)
        return (
            f"{self.sessions} sessions x {self.per_session} questions: {self.answered} answered "
            f"in {self.seconds:.1f} s ({self.answered / max(self.seconds, 1e-9):.1f} answers/s); "
            f"latency p50 {percentile(ms, 0.5):.0f} ms, p95 {p95:.0f} ms, max {ms[-1]:.0f} ms; "
            f"errors {len(self.errors)}; different from the sequential answer "
            f"{len(self.different)}"
        )


@dataclass
class Overload:
    """What callers sending all at once, past the queue's size, saw."""

    callers: int
    answered: int = 0
    busy: list[float] = field(default_factory=list)  # seconds until each was told
    errors: list[str] = field(default_factory=list)
    different: int = 0

    def summary(self) -> str:
        told = ""
        if self.busy:
            ms = sorted(t * 1000 for t in self.busy)
            told = f" (told in {percentile(ms, 0.5):.0f} ms median, {ms[-1]:.0f} ms max)"
        return (
            f"{self.callers} callers at once, 1 question each: {self.answered} answered, "
            f"{len(self.busy)} told the app is busy{told}; other errors {len(self.errors)}; "
            f"different from the sequential answer {self.different}"
        )


def load_questions(limit: int) -> list[str]:
    """Up to `limit` distinct questions from the statement eval sets, answerable ones first."""
    questions: list[str] = []
    for name in QUESTION_FILES:
        for line in (ROOT / "eval" / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                questions.append(json.loads(line)["question"])
    return list(dict.fromkeys(questions))[:limit]


def client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, analytics_enabled=False, download_files=False)


def ask(session, question: str, timeout: float) -> str:
    return session.submit(question, api_name="/chat").result(timeout=timeout)


def reference(url: str, questions: list[str], deadline: float) -> dict[str, str]:
    """Each question's reply, asked one after another in one session."""
    with _connected(url, 1) as (session,):
        return {q: ask(session, q, _left(deadline)) for q in questions}


def sessions_at_once(
    url: str, expected: dict[str, str], sessions: int, per_session: int, deadline: float
) -> Run:
    """`sessions` sessions started together, each asking `per_session` questions in a row."""
    questions = list(expected)
    run = Run(sessions, per_session)
    lock = threading.Lock()
    start = threading.Barrier(sessions + 1)

    def session(number: int) -> None:
        start.wait()
        for turn in range(per_session):
            question = questions[(number * per_session + turn) % len(questions)]
            began = time.perf_counter()
            try:
                reply = ask(clients[number], question, _left(deadline))
            except Exception as exc:  # counted and reported; the run goes on
                with lock:
                    run.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            took = time.perf_counter() - began
            with lock:
                run.latencies.append(took)
                if reply != expected[question]:
                    run.different.append(question)

    with _connected(url, sessions) as clients:
        run.seconds = _together(session, sessions, start)
    return run


def overload(url: str, question: str, expected: str, callers: int, deadline: float) -> Overload:
    """`callers` sending `question` at the same moment, each as a plain HTTP caller (join the
    queue, read the reply from the event stream): hundreds of gradio_client sessions in this one
    process would time their own threads' contention rather than the server's answer."""
    import httpx

    result = Overload(callers)
    lock = threading.Lock()
    fn = _endpoint(url, "chat")
    start = threading.Barrier(callers + 1)
    clients = [httpx.Client(timeout=_left(deadline)) for _ in range(callers)]

    def caller(number: int) -> None:
        start.wait()
        try:
            busy, seconds, reply = plain_call(clients[number], url, fn, question)
        except Exception as exc:
            with lock:
                result.errors.append(f"{type(exc).__name__}: {exc}")
            return
        with lock:
            if busy:
                result.busy.append(seconds)
            else:
                result.answered += 1
                result.different += reply != expected

    try:
        _together(caller, callers, start)
    finally:
        for c in clients:
            c.close()
    return result


def plain_call(http, url: str, fn: int, question: str) -> tuple[bool, float, str]:
    """Ask `/chat` with the httpx client `http`: (turned away as busy, seconds taken, reply)."""
    session = uuid.uuid4().hex
    body = {"data": [question, None, 3, None], "fn_index": fn, "session_hash": session}
    began = time.perf_counter()
    joined = http.post(f"{url}gradio_api/queue/join", json=body)
    if joined.status_code == 503:
        return True, time.perf_counter() - began, ""
    joined.raise_for_status()
    stream = http.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session})
    with stream as events:
        for line in events.iter_lines():
            message = json.loads(line[5:]) if line.startswith("data:") else {}
            if message.get("msg") == "process_completed":
                if not message.get("success"):
                    raise RuntimeError(f"the server failed: {message.get('output')}")
                return False, time.perf_counter() - began, message["output"]["data"][0]
    raise RuntimeError("the event stream ended without a reply")


def _endpoint(url: str, api_name: str) -> int:
    """The function index of the app's `api_name` endpoint."""
    import httpx

    config = httpx.get(f"{url}config", timeout=60).json()
    return next(d["id"] for d in config["dependencies"] if d.get("api_name") == api_name)


@contextmanager
def _connected(url: str, count: int):
    """`count` sessions, connected before the clock starts (each reads the app's config)."""
    with ThreadPoolExecutor(max_workers=min(count, 16)) as pool:
        clients = list(pool.map(lambda _: client(url), range(count)))
    try:
        yield clients
    finally:
        for c in clients:
            c.close()


def _together(work: Callable[[int], None], count: int, start: threading.Barrier) -> float:
    """Run `work(0..count-1)` in threads released at once; seconds until all are done."""
    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(count)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - began


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the load test ran out of time")
    return left


# ---- the server --------------------------------------------------------------------------


def is_loopback(url: str) -> bool:
    """Whether `url` points at this machine.

    >>> is_loopback("http://127.0.0.1:7860/"), is_loopback("http://example.com/")
    (True, False)
    """
    from ctqa.cli import is_loopback_host

    return is_loopback_host(urlsplit(url).hostname or "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`ctqa serve` on a free loopback port, stopped on leaving the block."""

    def __init__(self, deadline: float, *serve_args: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.deadline = deadline
        self.args = [sys.executable, "-m", "ctqa", "serve", "--port", str(self.port), *serve_args]
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        # a file, not a pipe: a server logging faster than we read would block on a full pipe
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            self.args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.log
        )
        try:
            self._wait_until_up()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_until_up(self) -> None:
        import httpx

        while True:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"ctqa serve stopped: {self.log.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.url}config", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            _left(self.deadline)
            time.sleep(0.5)

    def __exit__(self, *exc) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running chat on this machine (default: start one)")
    parser.add_argument("--clients", type=int, default=50, help="sessions at once (default 50)")
    parser.add_argument("--questions", type=int, default=5, help="questions a session asks")
    parser.add_argument(
        "--overload",
        type=int,
        default=200,
        help="callers at once in the second run, past the queue (default 200; 0: skip)",
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds for everything")
    args = parser.parse_args(argv)
    if args.url and not is_loopback(args.url):
        parser.error(f"--url must be on this machine (127.0.0.1, ::1 or localhost), not {args.url}")
    deadline = time.monotonic() + args.timeout
    if args.url:
        return _test(args.url, args, deadline)
    with Server(deadline) as server:
        print(f"ctqa serve on {server.url} (default queue and concurrency)", flush=True)
        return _test(server.url, args, deadline)


def _test(url: str, args, deadline: float) -> int:
    questions = load_questions(args.clients * args.questions)
    began = time.perf_counter()
    expected = reference(url, questions, deadline)
    each = (time.perf_counter() - began) / max(len(expected), 1) * 1000
    print(
        f"reference: {len(expected)} distinct questions asked one after another, "
        f"{each:.0f} ms each on average",
        flush=True,
    )
    run = sessions_at_once(url, expected, args.clients, args.questions, deadline)
    print(run.summary(), flush=True)
    for line in (run.errors + run.different)[:5]:
        print(f"  {line}")
    ok = not run.errors and not run.different and run.answered == args.clients * args.questions
    if args.overload:
        first = questions[0]
        over = overload(url, first, expected[first], args.overload, deadline)
        print(over.summary(), flush=True)
        for line in over.errors[:5]:
            print(f"  {line}")
        ok = ok and bool(over.busy) and not over.errors and not over.different
    print("load test passed" if ok else "load test FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
