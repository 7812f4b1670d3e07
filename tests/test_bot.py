"""The bot's contract with the fake encoder: validation, follow-ups, citations, Markdown."""

import re
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ctqa import Answer, BadQuestion, Bot, Citation, Settings
from ctqa.errors import CtqaError
from ctqa.questions import clean_question, user_turns
from ctqa.render import escape_markdown

BAD_QUESTIONS = [
    ("", "empty"),
    ("   \t\n ", "empty"),
    ("?!?...", "no words"),
    ("x" * 1001, "over the limit of 1,000"),
    ("who\x00led", "control characters"),
    ("who\x1bled", "control characters"),
    ("who \ud800 led", "lone surrogates"),
    (None, "must be text, not NoneType"),
    (42, "must be text, not int"),
    (b"bytes?", "must be text, not bytes"),
    (["a list"], "must be text, not list"),
]


@pytest.mark.parametrize("question, message", BAD_QUESTIONS)
def test_bad_questions_are_refused_before_any_encoding(fake_bot, fake_encoder, question, message):
    with pytest.raises(BadQuestion, match=message):
        fake_bot.answer(question)
    assert fake_encoder.calls == []


@pytest.mark.parametrize("k", [0, -1, 21, 10**9, "3", 2.5, None, True])
def test_bad_k_is_refused(fake_bot, k):
    with pytest.raises(BadQuestion, match="k .* whole number from 1 to 20"):
        fake_bot.answer("Who led the delegation?", k=k)


@pytest.mark.parametrize("history", ["a string", 42, {"role": "user"}, [42], [None]])
def test_malformed_history_is_refused(fake_bot, history):
    with pytest.raises(BadQuestion, match="history"):
        fake_bot.answer("And the French one?", history=history)


def test_history_accepts_strings_and_chat_messages():
    messages = [
        {"role": "user", "content": "Who led the Indian delegation?"},
        {"role": "assistant", "content": "Mahaveer Singhvi..."},
        {"role": "user", "content": [{"type": "text", "text": "Where?"}]},
        "Plain earlier question",
        {"role": "user", "content": ""},
    ]
    assert user_turns(messages, 50, 1000) == [
        "Who led the Indian delegation?",
        "Where?",
        "Plain earlier question",
    ]
    assert len(user_turns(["q"] * 10_000, 50, 1000)) == 50


def test_whitespace_is_normalised():
    assert clean_question(" Who\tled\nthe  delegation? ", 1000) == "Who led the delegation?"


def test_answer_cites_exact_slices_of_the_statement_files(fake_bot, corpus):
    answer = fake_bot.answer("Engineers from Bengaluru and Toulouse build the payload", k=3)
    assert isinstance(answer, Answer) and not answer.abstained
    first = answer.citations[0]
    assert isinstance(first, Citation)
    assert first.doc_id == "space-cooperation" and first.paragraph == 2
    assert first.date == "2022-03-01" and first.title == "Space Cooperation"
    for c in answer.citations:
        text = (corpus / f"{c.doc_id}.txt").read_bytes().decode("utf-8")
        assert text[c.start : c.end] == c.text
        assert c.start <= c.highlight[0] < c.highlight[1] <= c.end
        assert c.source == str(corpus / f"{c.doc_id}.txt")
    assert [c.score for c in answer.citations] == sorted(
        (c.score for c in answer.citations), reverse=True
    )
    assert answer.text.startswith("> Engineers from Bengaluru")
    assert "1. *Space Cooperation*, 2022-03-01, paragraph 2:" in answer.text


def test_k_limits_the_citations(fake_bot):
    engineers = "Engineers from Bengaluru and Toulouse build the payload"
    assert len(fake_bot.answer(engineers, k=1).citations) == 1
    assert len(fake_bot.answer("terrorism cooperation", k=5).citations) == 5


def test_unrelated_questions_are_abstained_on(fake_bot):
    answer = fake_bot.answer("zebra quantum pancake recipe?")
    assert answer.abstained and answer.citations == []
    assert "do not answer this question" in answer.text


@pytest.mark.parametrize("bias, leans", [(100.0, True), (-100.0, False)])
def test_the_query_searched_is_the_one_the_rule_chose(corpus, tmp_path, fake_encoder, bias, leans):
    settings = Settings(abstain_below=0.2, reader="off", follow_bias=bias)
    bot = Bot(corpus, tmp_path / "ix", settings=settings, encoder=fake_encoder, log=lambda m: m)
    answer = bot.answer("And the French one?", history=["Who led the Indian delegation?"])
    if leans:
        assert answer.query == "Who led the Indian delegation? And the French one?"
        assert answer.text.startswith("_Searched for: Who led the Indian delegation? And the")
    else:
        assert answer.query == "And the French one?"
        assert "Searched for" not in answer.text


def test_markdown_and_html_in_passages_are_shown_as_text():
    assert escape_markdown("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert escape_markdown("![x](http://evil/img.png)") == "!\\[x\\](http://evil/img.png)"
    assert escape_markdown("a\n\n# b") == "a # b"


def test_the_bot_builds_its_index_on_first_use_and_reuses_it(corpus, tmp_path, fake_encoder):
    bot = Bot(corpus=corpus, index=tmp_path / "ix", encoder=fake_encoder, log=lambda m: None)
    assert not (tmp_path / "ix").exists()
    bot.answer("satellite launch")
    assert (tmp_path / "ix" / "CURRENT").exists()
    calls = len(fake_encoder.calls)
    again = Bot(corpus=corpus, index=tmp_path / "ix", encoder=fake_encoder, log=lambda m: None)
    again.answer("satellite launch")
    assert len(fake_encoder.calls) == calls + 1  # only the question was encoded


@pytest.mark.parametrize(
    "given, message",
    [
        ({"threads": 100_000}, "threads .CTQA_THREADS. must be a whole number from 1 to 256"),
        ({"threads": -3}, "not -3"),
        ({"nprobe_units": 0}, "nprobe_units"),
        ({"weight_dense": float("inf")}, "weight_dense .CTQA_WEIGHT_DENSE. must be a finite"),
        ({"follow_bias": float("nan")}, "must be a finite number"),
        ({"abstain_below": float("nan")}, "must be a finite number"),
        ({"max_history_turns": 10**20}, "from 0 to 1,000,000, not 1"),
        ({"fusion": "best"}, "must be one of weighted, rrf, dense, lexical, not 'best'"),
    ],
)
def test_settings_out_of_range_are_refused_saying_which_and_what_it_takes(given, message):
    with pytest.raises(CtqaError, match=message):
        Settings(**given)


def test_thresholds_may_be_infinite_and_folders_relative():
    Settings(abstain_below=float("-inf"), agreement_cosine=float("inf"))  # never abstain, agree
    assert Settings(corpus_dir=Path("."), index_dir=Path("ix")).corpus_dir == Path(".")


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("CTQA_MAX_QUESTION_CHARS", "10")
    assert Settings.from_env().max_question_chars == 10
    monkeypatch.setenv("CTQA_MAX_QUESTION_CHARS", "ten")
    with pytest.raises(Exception, match="CTQA_MAX_QUESTION_CHARS='ten' is not a valid int"):
        Settings.from_env()


def test_a_running_bot_picks_up_a_new_generation(corpus, tmp_path, fake_encoder):
    """`ctqa index` run beside a serving bot: the next question is answered from the new
    generation, without a restart."""
    from ctqa.build import build_index
    from ctqa.minilm import token_counter

    index_dir, space = tmp_path / "index", corpus / "space-cooperation.txt"
    settings = Settings(abstain_below=0.0, reader="off")
    bot = Bot(corpus, index_dir, encoder=fake_encoder, settings=settings, log=lambda m: None)
    question = "When will the satellite launch?"
    assert "2025" in bot.answer(question).citations[0].text
    space.write_text("date 2022-03-01\nThe satellite launch moved to 2027.\n", encoding="utf-8")
    build_index(corpus, index_dir, fake_encoder, settings, token_counter())
    first = bot.answer(question).citations[0]
    assert "2027" in first.text
    assert space.read_text(encoding="utf-8")[first.start : first.end] == first.text


def _statement(version: int) -> str:
    return (
        "\n\n".join(
            f"Release{version}: the council met in Paris on item {i}. "
            f"Delegates of release{version} agreed."
            for i in range(1, 4)
        )
        + "\n"
    )


def test_answers_during_rebuilds_each_cite_one_generation(tmp_path, fake_encoder):
    from ctqa.build import build_index
    from ctqa.minilm import token_counter

    corpus, index_dir = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    texts = {0: _statement(0)}
    for name in ("a", "b"):
        (corpus / f"{name}.txt").write_text(texts[0], encoding="utf-8")
    settings = Settings(abstain_below=0.0, reader="off")
    bot = Bot(corpus, index_dir, encoder=fake_encoder, settings=settings, log=lambda m: None)
    bot.answer("Where did the council meet?")
    last, stop, failures, seen = 6, threading.Event(), [], []

    def ask():
        deadline = time.monotonic() + 60
        try:
            while not (stop.is_set() and seen and seen[-1] == last) and time.monotonic() < deadline:
                citations = bot.answer("Where did the council meet?", k=5).citations
                versions = {int(v) for c in citations for v in re.findall(r"elease(\d+)", c.text)}
                assert len(versions) == 1, versions
                version = versions.pop()
                assert all(texts[version][c.start : c.end] == c.text for c in citations)
                seen.append(version)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for version in range(1, last + 1):
        texts[version] = _statement(version)
        for name in ("a", "b"):
            (corpus / f"{name}.txt").write_text(texts[version], encoding="utf-8")
        build_index(corpus, index_dir, fake_encoder, settings, token_counter())
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert len(set(seen)) >= 3 and seen[-1] == last


def test_chat_message_parts_that_are_not_text_are_skipped():
    history = [
        {"role": "user", "content": [{"type": "text", "text": 5}, {"text": None}, "Who led?"]}
    ]
    assert user_turns(history, 50, 1000) == ["Who led?"]


class FakeReader:
    """Reads a passage as answering when it holds `favourite`, its span that word."""

    def __init__(self, favourite: str, candidates: int = 3):
        from ctqa.reader import Calibration

        self.favourite = favourite
        self.calibration = Calibration(
            reader=1.0,
            span=0.0,
            retrieval=0.0,
            agreement=0.0,
            bias=0.0,
            abstain_below=0.5,
            candidates=candidates,
        )
        self.read_passages: list[str] = []

    def read(self, question, passages):
        from ctqa.reader import Reading

        self.read_passages += passages
        found = []
        for text in passages:
            at = text.find(self.favourite)
            if at >= 0:
                found.append(Reading(4.0, (at, at + len(self.favourite)), 1.0))
            else:
                found.append(Reading(-4.0, (0, 3), -1.0))
        return found


def reader_bot(corpus, tmp_path, fake_encoder, reader):
    return Bot(
        corpus,
        tmp_path / "ix",
        encoder=fake_encoder,
        reader=reader,
        settings=Settings(reader="on"),
        log=lambda m: None,
    )


def test_the_reader_orders_the_passages_and_marks_the_answer(corpus, tmp_path, fake_encoder):
    reader = FakeReader("Toulouse")
    bot = reader_bot(corpus, tmp_path, fake_encoder, reader)
    answer = bot.answer("Who will build the payload with the engineers?", k=5)
    assert len(reader.read_passages) == 3  # only the first 3 retrieval proposes
    first = answer.citations[0]
    assert not answer.abstained and first.doc_id == "space-cooperation"
    assert first.answer_text == "Toulouse"
    text = (corpus / "space-cooperation.txt").read_text(encoding="utf-8")
    assert text[first.answer[0] : first.answer[1]] == "Toulouse"
    assert first.sentence.startswith("Engineers from Bengaluru") and "Toulouse" in first.sentence
    assert answer.confidence == pytest.approx(1 / (1 + 2.718281828459045**-4), abs=1e-6)
    assert [c.score is None for c in answer.citations] == [False] * 3 + [True] * 2
    assert "**Toulouse**" in answer.text.splitlines()[0]


def test_the_reader_abstains_when_no_passage_answers(corpus, tmp_path, fake_encoder):
    bot = reader_bot(corpus, tmp_path, fake_encoder, FakeReader("Mars"))
    answer = bot.answer("Who will build the payload with the engineers?")
    assert answer.abstained and answer.citations == [] and len(answer.nearest) == 3
    assert answer.confidence < 0.5


def test_an_unknown_reader_setting_is_refused(fake_bot):
    from dataclasses import replace

    from ctqa import CtqaError

    fake_bot.settings = replace(fake_bot.settings, reader="maybe")
    with pytest.raises(CtqaError, match="use on or off"):
        fake_bot.answer("Who led the delegation?")


CHAT = [
    "Who led the Indian delegation?",
    "And the French one?",
    "What did they say about Afghanistan?",
    "Which groups were named?",
]


def test_a_chat_s_next_question_searches_only_itself(corpus, tmp_path, fake_encoder):
    """The earlier questions were searched on their own turns: the next turn reuses those
    searches (recent.py) and gives the answer a bot that keeps none gives."""
    settings = Settings(abstain_below=0.2, reader="off", follow_bias=100.0)  # every turn leans
    bot = Bot(corpus, tmp_path / "ix", settings=settings, encoder=fake_encoder, log=lambda m: m)
    for turn in range(len(CHAT) - 1):
        bot.answer(CHAT[turn], history=CHAT[:turn])
    encoded = len(fake_encoder.calls)
    answer = bot.answer(CHAT[-1], history=CHAT[:-1])
    assert len(fake_encoder.calls) - encoded == 2  # the question alone, and glued
    keeps_none = replace(settings, recent_searches=0)
    fresh = Bot(corpus, tmp_path / "ix", settings=keeps_none, encoder=fake_encoder, log=print)
    encoded = len(fake_encoder.calls)
    assert fresh.answer(CHAT[-1], history=CHAT[:-1]) == answer
    assert len(fake_encoder.calls) - encoded == 1 + 2 * 3  # every turn of the window again


def test_the_question_asked_is_always_searched_afresh(fake_bot, fake_encoder):
    fake_bot.answer(CHAT[0])
    encoded = len(fake_encoder.calls)
    fake_bot.answer(CHAT[0])
    fake_bot.answer(CHAT[1], history=[CHAT[0]])  # its earlier question is reused, not itself
    assert len(fake_encoder.calls) - encoded == 1 + 2


def test_only_the_shipped_corpus_keeps_its_index_in_embeddings(tmp_path, monkeypatch):
    from ctqa.bot import default_index_dir, own_index_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    shipped, mine = Settings(), tmp_path / "mine"
    mine.mkdir()
    assert own_index_dir(shipped.corpus_dir, shipped) == shipped.index_dir
    # CTQA_CORPUS_DIR alone: the shipped embeddings/ is never rebuilt with another corpus
    assert Bot(settings=Settings(corpus_dir=mine)).index_dir == default_index_dir(mine)
    assert own_index_dir(mine, Settings(corpus_dir=mine)) == default_index_dir(mine)
    chosen = Settings(corpus_dir=mine, index_dir=tmp_path / "ix")  # both chosen: as chosen
    assert Bot(settings=chosen).index_dir == tmp_path / "ix"
    assert own_index_dir(mine, shipped) == default_index_dir(mine)


def test_a_bot_given_only_an_index_cites_the_statements_beside_it(corpus, tmp_path, fake_encoder):
    index = corpus.parent / "statements.index"  # beside the corpus, as embeddings/ and seeds/
    Bot(corpus, index, encoder=fake_encoder, settings=Settings(abstain_below=0.0)).load()
    alone = Bot(index=index, encoder=fake_encoder, settings=Settings(abstain_below=0.0))
    cited = alone.answer("Who led the French delegation?").citations[0]
    text = Path(cited.source).read_bytes().decode("utf-8")
    assert text[cited.start : cited.end] == cited.text


def test_an_index_built_from_dot_or_opened_through_a_link_cites_existing_files(
    corpus, tmp_path, fake_encoder, monkeypatch
):
    settings = Settings(abstain_below=0.0)
    monkeypatch.chdir(corpus)  # `ctqa index --corpus . --index ...` from inside the corpus
    Bot(".", corpus.parent / "built", encoder=fake_encoder, settings=settings).load()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    (corpus.parent / "linked").symlink_to(corpus.parent / "built")
    for index in ("built", "linked"):
        alone = Bot(index=corpus.parent / index, encoder=fake_encoder, settings=settings)
        cited = alone.answer("Who led the French delegation?").citations[0]
        assert Path(cited.source).is_absolute() and Path(cited.source).parent == corpus


def test_no_history_is_kept_when_the_setting_says_none():
    assert user_turns(["Who led?", "Where?"], 0, 1000) == []
    assert user_turns(["Who led?", "Where?"], 1, 1000) == ["Where?"]
