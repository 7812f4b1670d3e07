"""A page's conversation on the server: questions answered in the order asked, a clear that
drops the replies still on their way, statement lists that follow the index (fake encoder)."""

from types import SimpleNamespace

import pytest

from ctqa.build import build_index
from ctqa.chat import CAUGHT_UP, ChatService, PageConversation, PageConversations
from ctqa.gradio_setup import gr
from ctqa.minilm import token_counter

INDIAN = "Who led the Indian delegation?"
FRENCH = "And the French one?"
SKIPPED = (gr.skip(),) * 7


@pytest.fixture
def service(fake_bot):
    return ChatService(fake_bot)


def page(name="page-1"):
    return SimpleNamespace(session_hash=name)


def asked(messages) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "user"]


def test_a_question_asked_before_a_clear_is_dropped_when_its_reply_comes(service):
    _, shown, turns, *_ = service.respond(INDIAN, [], 3, [], [], page())
    service.clear(page())
    # the page sent what it showed before the clear; the reply comes after it
    assert service.respond(FRENCH, shown, 3, [], turns, page()) == SKIPPED
    _, fresh, turns, *_ = service.respond(FRENCH, [], 3, [], [], page())
    assert asked(fresh) == [FRENCH] and [t.question for t in turns] == [FRENCH]


def test_a_clear_while_the_question_is_answered_drops_its_reply(service, monkeypatch):
    _, shown, turns, *_ = service.respond(INDIAN, [], 3, [], [], page())
    answer = service.bot.answer

    def cleared_meanwhile(*args, **kwargs):
        service.clear(page())
        return answer(*args, **kwargs)

    monkeypatch.setattr(service.bot, "answer", cleared_meanwhile)
    assert service.respond(FRENCH, shown, 3, [], turns, page()) == SKIPPED
    assert service.pages.of("page-1")[0].messages == []


def test_questions_asked_before_a_reply_each_follow_the_ones_before(service, monkeypatch):
    histories, answer = [], service.bot.answer

    def spied(question, history=None, **kwargs):
        histories.append(list(history or []))
        return answer(question, history=history, **kwargs)

    monkeypatch.setattr(service.bot, "answer", spied)
    service.respond(INDIAN, [], 3, [], [], page())
    # an example clicked before the first reply: the page still showed an empty chat
    _, shown, turns, *_ = service.respond(FRENCH, [], 3, [], [], page())
    assert asked(shown) == [INDIAN, FRENCH]
    assert [t.message for t in turns] == [1, 3]  # each reply where the chat shows it
    assert histories == [[], [INDIAN]]  # the second follows the first


def test_a_page_that_drew_an_earlier_reply_last_catches_up(service):
    _, first_only, _, _, first_radio, *_ = service.respond(INDIAN, [], 3, [], [], page())
    groups = "Which terrorist groups were named?"
    _, both, turns, last, radio, panel, reading = service.respond(groups, [], 3, [], [], page())
    # the first reply reached the page after the second one and drew the page without it
    caught_up = service.catch_up(first_only, page())
    assert caught_up[:3] == (both, turns, last) and last.question == groups
    assert caught_up[4] == panel  # the second reply's first passage, in its statement
    for shown, expected in ((caught_up[3], radio), (caught_up[5], reading)):
        assert shown.constructor_args == expected.constructor_args
    assert radio.constructor_args != first_radio.constructor_args  # its own citations
    assert service.catch_up(both, page()) == CAUGHT_UP
    service.clear(page())
    assert service.catch_up([], page()) == CAUGHT_UP
    assert service.catch_up(first_only, page()) == CAUGHT_UP  # no undo


def test_catching_up_after_a_refused_question_shows_the_last_answer_s_sources(service):
    service.respond(INDIAN, [], 3, [], [], page())
    _, _, _, last, *_ = service.respond("Which terrorist groups were named?", [], 3, [], [], page())
    _, shown, turns, *skipped = service.respond("", [], 3, [], [], page())  # refused
    assert turns[-1].error and skipped == [gr.skip()] * 4
    caught_up = service.catch_up(shown[:2], page())
    assert caught_up[:3] == (shown, turns, last)  # the sources of the last question answered


def test_an_empty_page_is_not_refilled_before_the_server_hears_of_its_clear(service):
    service.respond(INDIAN, [], 3, [], [], page())  # the server still holds this exchange
    assert service.catch_up([], page()) == CAUGHT_UP


def test_catching_up_leaves_a_page_the_server_does_not_hold_as_it_is(service):
    assert service.catch_up([{"role": "user", "content": INDIAN}], page("unseen")) == CAUGHT_UP
    assert service.pages.known("unseen") is None  # and does not start holding it
    assert service.catch_up([], None) == CAUGHT_UP  # called without a page


def test_each_page_has_its_own_conversation_and_a_forgotten_page_keeps_what_it_shows(service):
    _, mine, turns, *_ = service.respond(INDIAN, [], 3, [], [], page("a"))
    _, theirs, *_ = service.respond(FRENCH, [], 3, [], [], page("b"))
    assert asked(theirs) == [FRENCH]
    service.pages = PageConversations(size=1)  # as if page "a" had been forgotten
    _, again, *_ = service.respond(FRENCH, mine, 3, [], turns, page("a"))
    assert asked(again) == [INDIAN, FRENCH]


def test_called_without_a_page_it_answers_from_what_it_is_given(service):
    service.respond(INDIAN, [], 3, [], [])
    _, again, *_ = service.respond(FRENCH, [], 3, [], [])
    assert asked(again) == [FRENCH]


def test_an_outcome_is_not_kept_over_a_clear_that_came_after_it_was_asked():
    page = PageConversation()
    cleared, shown, turns = page.now()
    page.clear()  # while the answer was being found
    assert not page.keep(cleared, ["asked", "replied"], ["turn"])
    assert page.now() == (1, [], [])
    assert page.keep(1, ["asked", "replied"], ["turn"]) and page.messages == ["asked", "replied"]


def reindex(service, corpus, encoder):
    """What `ctqa index` does beside the running page."""
    build_index(corpus, service.bot.index_dir, encoder, service.settings, token_counter())


def test_the_statement_lists_follow_the_index_in_use(service, corpus, fake_encoder):
    filter_, reading, panel = service.statement_lists()
    ids = [i for _, i in reading.constructor_args["choices"]]
    assert ids == sorted(service.documents) and filter_.constructor_args["visible"] is True
    assert reading.constructor_args["value"] == ids[0] and "<h3>" in panel
    (corpus / "space-cooperation.txt").unlink()
    reindex(service, corpus, fake_encoder)
    _, reading, _ = service.statement_lists()
    assert [i for _, i in reading.constructor_args["choices"]] == [
        "india-france-joint-working-group-on-counter-terrorism"
    ]
    assert "no longer indexed" in service.statement("space-cooperation")


def test_a_citation_of_a_statement_changed_since_is_not_marked_in_the_new_text(
    service, corpus, fake_encoder
):
    cited = service.bot.answer(INDIAN).citations[0]
    seed = corpus / f"{cited.doc_id}.txt"
    seed.write_text(seed.read_text(encoding="utf-8").replace("Mahaveer", "M."), encoding="utf-8")
    reindex(service, corpus, fake_encoder)
    panel = service.statement(cited.doc_id, cited)
    assert "changed since that reply" in panel and "<mark>" not in panel
