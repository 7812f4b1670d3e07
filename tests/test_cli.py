"""The `ctqa` command as a user runs it, in a subprocess."""

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT, SEED


def ctqa(*args, stdin=None, cwd=None, timeout=300, **environment):
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", **environment}
    return subprocess.run(
        [sys.executable, "-m", "ctqa", *args],
        input=stdin,
        cwd=cwd or ROOT,
        capture_output=True,
        timeout=timeout,
        env=env,
    )


def test_help_lists_the_commands():
    done = ctqa("--help")
    assert done.returncode == 0
    for command in (b"ask", b"index", b"serve", b"eval"):
        assert command in done.stdout


def test_ask_as_json(tmp_path):
    done = ctqa("ask", "Who led the French delegation?", "--json", "-k", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["abstained"] is False and len(answer["citations"]) == 2
    first = answer["citations"][0]
    assert first["paragraph"] == 3 and "BERTOUX" in first["text"]
    assert SEED.read_text(encoding="utf-8")[first["start"] : first["end"]] == first["text"]
    assert first["source"] == str(SEED)


def test_ask_after_earlier_questions_shows_what_was_searched():
    earlier = ["--after", "Who led the French delegation?"]
    done = ctqa("ask", "What is his title?", *earlier, "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["query"] == "Who led the French delegation? What is his title?"
    assert answer["citations"][0]["paragraph"] == 3
    text = ctqa("ask", "What is his title?", *earlier).stdout.decode()
    assert text.startswith("_Searched for: Who led the French delegation? What is his title?_")


def test_ask_as_text_reads_stdin():
    done = ctqa("ask", "-", stdin=b"Where was the meeting held?")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("> The two countries held the 15th Meeting")


@pytest.mark.parametrize(
    "args, stdin, message",
    [
        (["ask", ""], None, b"the question is empty"),
        (["ask", "x" * 2000], None, b"over the limit"),
        (["ask", "-"], b"\xff\xfe\xfa", b"not valid UTF-8"),
        (["ask", "-"], b"Who led \xc3(", b"not valid UTF-8"),
        (["ask", "-"], b"", b"the question is empty"),
        (["ask", "-"], b" \n\t\n", b"the question is empty"),
        (["ask", "-"], b"who\x00led", b"control characters"),
        (["ask", "-"], b"x" * 1_000_001, b"over the limit of 1,000 characters"),
        (["ask", "-"], b"x" * 100_000_000, b"over the limit of 1,000 characters"),
        (["ask", b"who \xff led"], None, b"lone surrogates"),  # argv that is not UTF-8
        (["ask", "who\x1b[2J"], None, b"control characters"),
        (["ask", "?!"], None, b"no words"),
        (["ask", "who", "-k", "0"], None, b"k (the number of passages)"),
        (["ask", "who", "-k", "-1"], None, b"not -1"),
        (["ask", "who", "-k", "9" * 40], None, b"k (the number of passages)"),
        (["serve", "--auth-file", "/nonexistent"], None, b"cannot read the password file"),
        (["ask", "who", "--corpus", "/nonexistent"], None, b"is not a folder of statements"),
        (["ask", "who", "--index", "/nonexistent"], None, b"no index in /nonexistent"),
        (["eval", "--limit", "1", "--out", "README.md"], None, b"cannot write the report in"),
    ],
)
def test_errors_are_one_clear_line_and_a_non_zero_exit(args, stdin, message):
    done = ctqa(*args, stdin=stdin)
    assert done.returncode != 0
    assert message in done.stderr
    assert b"Traceback" not in done.stderr
    assert done.stderr.strip().count(b"\n") == 0, done.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["ask", "who", "-k", "abc"], b"argument -k: invalid int value: 'abc'"),
        (["ask", "who", "-k", "2.5"], b"argument -k: invalid int value: '2.5'"),
        (["serve", "--port", "70000"], b"'70000' is not a whole number from 1 to 65535"),
        (["serve", "--queue-size", "0"], b"'0' is not a whole number from 1 to 10000"),
        (["serve", "--concurrency", "x"], b"'x' is not a whole number from 1 to 64"),
        (["eval", "--limit", "0"], b"'0' is not a whole number from 1"),
        (["eval", "--limit", "-1"], b"'-1' is not a whole number from 1"),
    ],
)
def test_malformed_options_are_usage_errors(args, message):
    done = ctqa(*args)
    assert done.returncode == 2 and message in done.stderr and b"Traceback" not in done.stderr


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("CTQA_CANDIDATES", "0", b"candidates (CTQA_CANDIDATES) must be a whole number from 1"),
        ("CTQA_ENCODE_BATCH_SIZE", "-1", b"must be a whole number from 1 to 4,096, not -1"),
        ("CTQA_MAX_PASSAGE_TOKENS", "0", b"must be a whole number from 16 to 256"),
        ("CTQA_ABSTAIN_BELOW", "nan", b"abstain_below (CTQA_ABSTAIN_BELOW) must be a finite"),
        ("CTQA_FUSION", "abc", b"must be one of weighted, rrf, dense, lexical, not 'abc'"),
        ("CTQA_INDEX_DIR", "", b"index_dir (CTQA_INDEX_DIR) must name a folder or file"),
        ("CTQA_MAX_QUESTION_CHARS", "0", b"must be a whole number from 1 to 1,000,000"),
    ],
)
def test_a_setting_out_of_range_is_refused_in_one_line(name, value, message):
    done = ctqa("ask", "Who led the French delegation?", **{name: value})
    assert done.returncode == 1 and message in done.stderr, done.stderr
    assert done.stderr.strip().count(b"\n") == 0 and b"Traceback" not in done.stderr


def test_a_closed_or_narrow_output_and_a_closed_input_give_no_traceback():
    reader_gone = subprocess.Popen(
        [sys.executable, "-m", "ctqa", "ask", "Who led the French delegation?", "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    reader_gone.stdout.close()  # as `| head -c 0` would, before ctqa writes
    assert b"Traceback" not in reader_gone.communicate(timeout=300)[1]
    assert reader_gone.returncode == 1
    ascii_console = ctqa("ask", "Who led the French delegation?", PYTHONIOENCODING="ascii")
    assert ascii_console.returncode == 0, ascii_console.stderr
    assert b"BERTOUX" in ascii_console.stdout and b"?" in ascii_console.stdout  # quotes replaced
    ascii_json = ctqa("ask", "Which groups were named?", "--json", PYTHONIOENCODING="ascii")
    assert ascii_json.returncode == 0 and b"\\u2019" in ascii_json.stdout  # al-Qa\u2019ida
    assert "al-Qa\u2019ida" in json.loads(ascii_json.stdout)["text"]  # the same JSON
    closed = subprocess.run(
        [sys.executable, "-m", "ctqa", "ask", "-"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        preexec_fn=lambda: os.close(0),
        timeout=300,
    )
    assert closed.returncode == 1 and b"standard input is closed" in closed.stderr


def test_an_index_folder_that_is_a_file_is_named_as_such(tmp_path):
    (tmp_path / "afile").write_text("mine")
    done = ctqa("ask", "who", "--corpus", str(SEED.parent), "--index", str(tmp_path / "afile"))
    assert done.returncode == 1 and b"or a folder above it, is a file" in done.stderr
    assert (tmp_path / "afile").read_text() == "mine"


def test_a_byte_order_mark_on_stdin_is_not_part_of_the_question():
    done = ctqa("ask", "-", "--json", stdin="\ufeffWhere was the meeting held?".encode())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["question"] == "Where was the meeting held?"


def test_a_password_file_without_logins_is_refused_before_serving(tmp_path):
    logins = tmp_path / "logins"
    logins.write_text("# nobody yet\n", encoding="utf-8")
    done = ctqa("serve", "--auth-file", str(logins), "--port", "1")
    assert done.returncode == 1 and b"holds no user:password line" in done.stderr


def test_only_loopback_hosts_count_as_local():
    from ctqa import cli

    assert all(cli.is_loopback_host(h) for h in ("127.0.0.1", "::1", "localhost"))
    assert not any(cli.is_loopback_host(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.com"))


def test_index_check_reports_the_committed_index_fresh():
    done = ctqa("index", "--check")
    assert done.returncode == 0, done.stderr
    assert b"fresh" in done.stdout


def test_index_builds_a_new_corpus_and_check_notices_an_edit(corpus, tmp_path):
    ix = tmp_path / "ix"
    done = ctqa("index", "--corpus", str(corpus), "--index", str(ix))
    assert done.returncode == 0, done.stderr
    assert b"Indexed 2 statements, 10 passages" in done.stdout
    assert ctqa("index", "--check", "--corpus", str(corpus), "--index", str(ix)).returncode == 0
    (corpus / "space-cooperation.txt").write_text("Edited.", encoding="utf-8")
    check = ctqa("index", "--check", "--corpus", str(corpus), "--index", str(ix))
    assert check.returncode == 1
    assert b"stale (statement changed: space-cooperation.txt)" in check.stdout
    ask = ctqa("ask", "satellite", "--corpus", str(corpus), "--index", str(ix), "--json")
    assert ask.returncode == 0, ask.stderr  # a stale index is brought up to date first


def test_eval_runs_and_writes_a_report(tmp_path):
    done = ctqa("eval", "--set", "statement", "--limit", "5", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert "statement/answerable" in out and "Hit@1" in out
    assert re.search(r"abstention ROC AUC against statement/unanswerable [01]\.\d{3}", out)
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report[0]["questions"] == 5 and report[0]["hit_at_1"] is not None
    assert "statement conversations, reported half" in out
    assert re.search(r"follow-up +\d\.\d{3} \(\d+\) +\d\.\d{3}", out)
    assert re.search(r"keep their first passage: [01]\.\d{3} of 5", out)
