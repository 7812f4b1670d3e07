"""Cold start: what `ctqa --help` imports, `ctqa ask` as a whole process against a bare
sentence-transformers script, and `ctqa serve` from start to first answer served."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench_common import ROOT, Report, Row, median, ratio

HEAVY = ("torch", "faiss", "gradio", "sentence_transformers", "transformers", "bm25s")
QUESTION = "Who led the Indian delegation?"

BARE_SCRIPT = """
import sys
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(sys.argv[1], device="cpu", local_files_only=True)
model.encode({question!r})
"""


def ctqa_command() -> list[str]:
    """The installed `ctqa` script, run by this interpreter."""
    script = Path(sys.executable).with_name("ctqa")
    return [sys.executable, str(script)] if script.exists() else [sys.executable, "-m", "ctqa"]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode caches are part of a normal start
    return env


def imported_modules(importtime_stderr: str) -> set[str]:
    """Top-level module names in `python -X importtime` output.

    >>> sorted(imported_modules("import time:  1 |  2 | numpy.core\\nimport time: 3 | 4 |   torch"))
    ['numpy', 'torch']
    """
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "package":
                names.add(name.split(".")[0])
    return names


@dataclass(frozen=True)
class HelpCheck:
    heavy: list[str]
    wall_ms: float


def check_help() -> HelpCheck:
    """Which heavy modules `ctqa --help` imports, and how long it takes."""
    cmd = ctqa_command()
    out = subprocess.run(
        [cmd[0], "-X", "importtime", *cmd[1:], "--help"],
        capture_output=True,
        text=True,
        env=child_env(),
        check=True,
    )
    heavy = sorted(imported_modules(out.stderr) & set(HEAVY))
    walls = [wall([*cmd, "--help"]) for _ in range(3)]
    return HelpCheck(heavy, median(walls) * 1000)


def wall(cmd: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None) -> float:
    """Seconds from start to exit of a process; it must succeed."""
    started = time.perf_counter()
    subprocess.run(
        cmd, cwd=cwd, env={**child_env(), **(env or {})}, check=True, capture_output=True
    )
    return time.perf_counter() - started


def ask_vs_bare(runs: int, index: Path) -> dict[str, list[float]]:
    """Whole-process seconds of `ctqa ask` (over seeds/ and `index`) on the default backend and
    on PyTorch, and of the bare script; taking turns."""
    from ctqa.minilm import model_dir

    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(BARE_SCRIPT.format(question=QUESTION))
    ask = [*ctqa_command(), "ask", QUESTION, *corpus_args(index)]
    commands = {
        "ctqa": (ask, {}),
        "ctqa torch": (ask, {"CTQA_ENCODER_BACKEND": "torch"}),
        "bare": ([sys.executable, handle.name, str(model_dir())], {}),
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    try:
        for cmd, env in commands.values():
            wall(cmd, env=env)  # file caches, bytecode and the ONNX export, as after a first run
        names = list(commands)
        for i in range(runs):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                times[name].append(wall(commands[name][0], env=commands[name][1]))
    finally:
        os.unlink(handle.name)
    return times


def corpus_args(index: Path) -> list[str]:
    return ["--corpus", str(ROOT / "seeds"), "--index", str(index)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_first_answer(index: Path, timeout: float = 300.0) -> tuple[float, float]:
    """(seconds to the first answer served, seconds to the port answering HTTP) of
    `ctqa serve` on a free loopback port; the server is stopped afterwards."""
    import httpx
    from gradio_client import Client

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [*ctqa_command(), "serve", "--port", str(port), *corpus_args(index)],
            cwd=ROOT,
            env=child_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            up = None
            while up is None:
                if proc.poll() is not None or time.perf_counter() - started > timeout:
                    log.seek(0)
                    tail = log.read().decode(errors="replace")[-2000:]
                    raise RuntimeError(f"ctqa serve did not come up:\n{tail}")
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        up = time.perf_counter() - started
                except httpx.HTTPError:
                    time.sleep(0.05)
            reply = Client(url, verbose=False).predict(QUESTION, api_name="/chat")
            answered = time.perf_counter() - started
            if not reply:
                raise RuntimeError("ctqa serve gave an empty reply")
        finally:
            stop(proc)
    return answered, up


def stop(proc: subprocess.Popen) -> None:
    """Interrupt the server (as Ctrl-C would), then kill it if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cold_section(report: Report, runs: int, index: Path) -> None:
    """Section 3, over seeds/ and a copy of its index at `index` (embeddings/ is left alone)."""
    help_check = check_help()
    report.add(
        Row(
            "3 cold start",
            "`ctqa --help`: heavy modules imported (python -X importtime)",
            ", ".join(help_check.heavy) or "none",
            f"{help_check.wall_ms:.0f} ms wall; checked: {', '.join(HEAVY)}",
            None,
            "none",
            not help_check.heavy,
        )
    )
    times = ask_vs_bare(runs, index)
    bare = median(times["bare"])
    for name, label in (("ctqa", "default backend"), ("ctqa torch", "CTQA_ENCODER_BACKEND=torch")):
        took = median(times[name])
        # the default: at most 1.5 s in all (issue 14); the torch backend: its import dominates
        target = ("<= 1.5 s", took <= 1.5) if name == "ctqa" else ("<= 1.3", took / bare <= 1.3)
        report.add(
            Row(
                "3 cold start",
                f'`ctqa ask "..."` whole process (as shipped), {label}, median of {runs}',
                f"{took:.2f} s",
                f"bare import + load + encode {bare:.2f} s",
                ratio(took, bare),
                *target,
            )
        )
    answered, up = serve_first_answer(index)
    report.add(
        Row(
            "3 cold start",
            "`ctqa serve`: start to first answer served (/chat API)",
            f"{answered:.2f} s (HTTP up at {up:.2f} s)",
            f"bare import + load + encode {bare:.2f} s",
            ratio(answered, bare),
        )
    )
    report.details["cold"] = {
        "help_heavy_imports": help_check.heavy,
        "help_wall_ms": help_check.wall_ms,
        "ask_s": times["ctqa"],
        "ask_torch_s": times["ctqa torch"],
        "bare_s": times["bare"],
        "serve_first_answer_s": answered,
        "serve_http_up_s": up,
    }
