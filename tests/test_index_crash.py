"""Builds killed with SIGKILL, and readers searching while builds switch generations.

The kill test runs a driver process (this file run as a script) that forks one child build per
step of the build's file-system work and SIGKILLs it at that step: before each mkdir, rename,
replace, fsync, unlink and rmdir, and before and after each file is opened for writing. Each
killed index folder is then checked here: the generation `CURRENT` names loads and answers a
fixed set of questions exactly as that generation did, and the next build succeeds and leaves
no debris.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import FakeEncoder, index_answers

from ctqa.build import build_index
from ctqa.config import Settings
from ctqa.live import LiveIndex
from ctqa.manifest import CURRENT, check_status, current_generation, index_settings
from ctqa.minilm import token_counter
from ctqa.store import load_index

SETTINGS = Settings()
WRITE_MODES = set("wax+")


def expected(encoder):
    return index_settings(SETTINGS, encoder.name, encoder.weights_sha256, encoder.dim)


def debris(index_dir: Path) -> list[str]:
    """What an interrupted build may leave: temporary generations and pointers."""
    return sorted(p.name for p in index_dir.iterdir() if p.name.endswith(".tmp"))


def generations(index_dir: Path) -> list[str]:
    return sorted(p.name for p in index_dir.iterdir() if p.name.startswith("gen-"))


def write_space(corpus: Path, text: str) -> None:
    (corpus / "space-cooperation.txt").write_text(f"date 2022-03-01\n{text}\n", encoding="utf-8")


# ---- SIGKILL at every step ---------------------------------------------------------------------


def _arm(step: int) -> None:
    """Make this process SIGKILL itself at the `step`-th file-system step of what follows."""
    seen = 0

    def hit():
        nonlocal seen
        seen += 1
        if seen == step:
            os.kill(os.getpid(), signal.SIGKILL)

    def before(call):
        def wrapped(*args, **kwargs):
            hit()
            return call(*args, **kwargs)

        return wrapped

    real_open = builtins.open

    def opening(file, mode="r", *args, **kwargs):
        writes = bool(WRITE_MODES & set(mode)) and not isinstance(file, int)
        if writes:
            hit()
        handle = real_open(file, mode, *args, **kwargs)
        if writes:
            hit()  # the file now exists, empty
        return handle

    for name in ("mkdir", "rename", "replace", "fsync", "unlink", "rmdir"):
        setattr(os, name, before(getattr(os, name)))
    builtins.open = io.open = opening


def drive(template: Path, corpus: Path, out: Path) -> None:
    """Copy `template` into `out/kill-NNN` and SIGKILL a build into it at step NNN, for every
    step until a build runs to its end; print how many steps there were."""
    from ctqa.build import build_index

    count = token_counter()
    step = 0
    while True:
        step += 1
        target = out / f"kill-{step:03d}"
        shutil.copytree(template, target)
        pid = os.fork()
        if pid == 0:  # the child: one build, killed at `step`
            code = 0
            try:
                _arm(step)
                build_index(corpus, target, FakeEncoder(), SETTINGS, count)
            except BaseException:
                code = 3
            os._exit(code)
        status = _wait(pid, 120)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            shutil.rmtree(target)  # this build had fewer steps: it ran to its end
            break
        if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
            raise SystemExit(f"step {step}: the build failed instead of being killed ({status})")
    print(json.dumps({"steps": step - 1}))


def _wait(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    raise SystemExit(f"a build child hung for {timeout} s")


@pytest.fixture
def killed_builds(corpus, tmp_path):
    """Index folders each holding a build of `changed` killed at one step, the answers before
    and after, and the generation in use before."""
    template = tmp_path / "template"
    build_index(corpus, template, FakeEncoder(), SETTINGS, token_counter())  # to be cleaned up
    write_space(corpus, "The agencies agreed to launch a joint satellite in 2025.")
    old = build_index(corpus, template, FakeEncoder(), SETTINGS, token_counter())
    (template / ".gen-20260101T000000-aaaaaaaa.tmp").mkdir()  # debris of an earlier kill
    (template / ".gen-20260101T000000-aaaaaaaa.tmp" / "documents.json").write_text("[")
    (template / f".{CURRENT}.bbbbbbbb.tmp").write_text("gen-x\n")
    changed = tmp_path / "changed"
    shutil.copytree(corpus, changed)
    write_space(changed, "Engineers in Toulouse will launch the satellite payload in 2027.")
    after_dir = tmp_path / "after"
    build_index(changed, after_dir, FakeEncoder(), SETTINGS, token_counter())
    out = tmp_path / "killed"
    out.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env["TOKENIZERS_PARALLELISM"] = "false"
    done = subprocess.run(
        [sys.executable, __file__, "drive", str(template), str(changed), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    steps = json.loads(done.stdout.splitlines()[-1])["steps"]
    killed = sorted(out.iterdir())
    assert len(killed) == steps
    return {
        "folders": killed,
        "changed": changed,
        "old": old.name,
        "before": index_answers(template),
        "after": index_answers(after_dir),
    }


def test_a_build_killed_at_any_step_leaves_a_working_index(killed_builds):
    k = killed_builds
    assert k["before"] != k["after"]  # the change shows in the answers
    assert len(k["folders"]) >= 20, f"only {len(k['folders'])} steps were killed"
    switched = 0
    for folder in k["folders"]:
        generation = current_generation(folder)
        if generation.name == k["old"]:
            assert index_answers(folder) == k["before"], folder.name
            assert check_status(folder, k["changed"], expected(FakeEncoder())).state == "stale"
        else:
            switched += 1  # killed after the switch: the new generation, complete
            assert index_answers(folder) == k["after"], folder.name
        build_index(k["changed"], folder, FakeEncoder(), SETTINGS, token_counter())
        assert index_answers(folder) == k["after"], folder.name
        assert debris(folder) == [], folder.name
        assert len(generations(folder)) == 2, folder.name
    assert 0 < switched < len(k["folders"])  # kills landed both before and after the switch
    print(f"SIGKILLed {len(k['folders'])} builds, one per step; {switched} after the switch")


# ---- the real command, the real model, killed ---------------------------------------------------


@pytest.fixture(scope="module")
def real_encoder():
    from ctqa.encoder import load_encoder

    return load_encoder()


def _kill_when(process, ready, timeout=300) -> str:
    """SIGKILL `process` as soon as `ready()` holds; say whether it was killed or had ended."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if ready():
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.0005)
    process.wait(timeout=60)
    return "killed" if process.returncode == -signal.SIGKILL else f"ended {process.returncode}"


@pytest.mark.slow
def test_the_real_index_command_killed_mid_build(corpus, tmp_path, real_encoder):
    ix = tmp_path / "ix"
    cmd = [sys.executable, "-m", "ctqa", "index", "--corpus", str(corpus), "--index", str(ix)]
    assert subprocess.run(cmd, capture_output=True, timeout=600).returncode == 0
    old = current_generation(ix)
    before = index_answers(ix, real_encoder)
    write_space(corpus, "Engineers in Toulouse will launch the satellite payload in 2027.")
    after_dir = tmp_path / "after"
    build_index(corpus, after_dir, real_encoder, SETTINGS, token_counter())
    after = index_answers(after_dir, real_encoder)
    assert before != after
    # On ONNX Runtime the whole build takes about a second; PyTorch's slower start and
    # embedding widen the windows the kills aim at. What a kill leaves behind does not
    # depend on the backend.
    slower = {**os.environ, "CTQA_ENCODER_BACKEND": "torch"}
    started = time.monotonic()
    points = {
        "while loading the model": lambda: time.monotonic() - started > 3,
        "while writing the generation": lambda: any(
            p.name.startswith(".gen-") for p in ix.iterdir()
        ),
        "once a generation is complete": lambda: len(generations(ix)) > 1,
    }
    outcomes = {}
    for point, ready in points.items():
        started = time.monotonic()
        process = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=slower
        )
        outcomes[point] = _kill_when(process, ready)
        in_use = current_generation(ix)
        assert index_answers(ix, real_encoder) == (before if in_use == old else after), point
    print(f"real `ctqa index` runs: {outcomes}")
    assert outcomes["while loading the model"] == "killed", outcomes
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert index_answers(ix, real_encoder) == after and debris(ix) == []
    check = subprocess.run([*cmd, "--check"], capture_output=True, text=True, timeout=600)
    assert check.returncode == 0, check.stdout


# ---- readers during rebuilds -------------------------------------------------------------------


def write_version(corpus: Path, version: int) -> None:
    """Every paragraph of every statement carries the version's marker word."""
    for name in ("council", "summit", "treaty"):
        paragraphs = [
            f"Release{version} of the {name} record: the council met in Paris on item {i}. "
            f"Delegates of release{version} agreed on the {name} text."
            for i in range(1, 4)
        ]
        (corpus / f"{name}.txt").write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")


def version_of(index) -> int:
    """The one version every statement of a loaded generation carries."""
    import re

    found = {int(v) for d in index.documents.values() for v in re.findall(r"release(\d+)", d.text)}
    assert len(found) == 1, f"a generation mixes versions {found}"
    return found.pop()


def retriever_for(index):
    from ctqa.retrieval import Retriever

    return Retriever(index, FakeEncoder(), SETTINGS)


def test_searches_during_rebuilds_each_come_from_one_generation(tmp_path):
    corpus, ix = tmp_path / "corpus", tmp_path / "ix"
    corpus.mkdir()
    write_version(corpus, 0)
    count = token_counter()
    build_index(corpus, ix, FakeEncoder(), SETTINGS, count)
    live = LiveIndex(ix, load_index(ix), make=retriever_for)
    pinned = live.get()  # a search that started before all the rebuilds below
    last = 8
    stop = threading.Event()
    seen: list[list[int]] = [[] for _ in range(3)]
    failures: list[BaseException] = []

    def read(mine: list[int]) -> None:
        try:
            while not (stop.is_set() and mine and mine[-1] == last):
                retriever = live.get()
                version = version_of(retriever.index)
                hits = retriever.search("Where did the council meet?", 5).hits
                assert hits
                for hit in hits:
                    doc = retriever.index.documents[hit.passage.doc_id]
                    assert doc.text[hit.passage.start : hit.passage.end] == hit.passage.text
                    assert f"release{version}" in hit.passage.text.lower()
                mine.append(version)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    readers = [threading.Thread(target=read, args=(mine,)) for mine in seen]
    for thread in readers:
        thread.start()
    for version in range(1, last + 1):
        write_version(corpus, version)
        build_index(corpus, ix, FakeEncoder(), SETTINGS, count)
        time.sleep(0.05)
    stop.set()
    for thread in readers:
        thread.join(timeout=120)
    assert not failures, failures
    assert not any(thread.is_alive() for thread in readers)
    for mine in seen:
        assert mine == sorted(mine) and mine[-1] == last  # never back to an older generation
    assert len({v for mine in seen for v in mine}) >= 3  # switches happened mid-run
    # the pinned search's generation is long deleted from disk; it still completes on it
    assert not pinned.index.folder.exists()
    hits = pinned.search("Where did the council meet?", 5).hits
    assert hits and all("release0" in h.passage.text.lower() for h in hits)


def test_a_damaged_new_generation_is_reported_and_the_old_one_serves(tmp_path):
    corpus, ix = tmp_path / "corpus", tmp_path / "ix"
    corpus.mkdir()
    write_version(corpus, 1)
    count = token_counter()
    build_index(corpus, ix, FakeEncoder(), SETTINGS, count)
    logged: list[str] = []
    live = LiveIndex(ix, load_index(ix), make=lambda index: index, log=logged.append)
    write_version(corpus, 2)
    broken = build_index(corpus, ix, FakeEncoder(), SETTINGS, count)
    (broken / "units.faiss").write_bytes(b"\0" * 100)
    assert version_of(live.get()) == 1 and version_of(live.get()) == 1
    assert len(logged) == 1 and f"{broken.name} is not used" in logged[0]
    assert "damaged (checksum mismatch); rebuild with `ctqa index`" in logged[0]
    write_version(corpus, 3)
    build_index(corpus, ix, FakeEncoder(), SETTINGS, count)
    assert version_of(live.get()) == 3 and live.generation == current_generation(ix).name


@pytest.mark.parametrize("builds, version", [(1, 1), (2, 3)])
def test_a_reader_that_reads_current_just_before_a_switch_still_loads(
    tmp_path, monkeypatch, builds, version
):
    """Builds that run between a reader's read of `CURRENT` and its load: after one, the
    generation it found is still there; after two it is gone and the load starts again on the
    newest."""
    import ctqa.store as index_module

    corpus, ix = tmp_path / "corpus", tmp_path / "ix"
    corpus.mkdir()
    write_version(corpus, 1)
    count = token_counter()
    build_index(corpus, ix, FakeEncoder(), SETTINGS, count)
    real_load = index_module.load_generation
    pending = [builds]

    def load_after_builds(generation, expected_settings=None):
        for _ in range(pending.pop() if pending else 0):
            write_version(corpus, version_of(real_load(current_generation(ix))) + 1)
            build_index(corpus, ix, FakeEncoder(), SETTINGS, count)
        return real_load(generation, expected_settings)

    monkeypatch.setattr(index_module, "load_generation", load_after_builds)
    assert version_of(load_index(ix)) == version


if __name__ == "__main__" and sys.argv[1:2] == ["drive"]:
    drive(*(Path(a) for a in sys.argv[2:5]))
