"""Query expansion from the corpus: acronyms, lowercase phrases, spelling variants."""

from ctqa.expansion import QueryExpander, names_in

TEXTS = [
    "The Joint Working Group on Counter Terrorism met in Paris.",
    "They named Lashkar e-Tayyiba (LeT) and al-Qa’ida.",
    "Both sides discussed combating financing of terrorism.",
]
MODEL_WORDS = {"paris", "let", "war", "cooperation", "qaeda"}


def expander() -> QueryExpander:
    return QueryExpander.build(TEXTS, MODEL_WORDS)


def test_an_unknown_acronym_is_spelled_out_from_the_corpus_names():
    expansion = expander().expand("where was the jwg held")
    assert expansion.text == "where was the Joint Working Group (jwg) held"
    assert expansion.acronyms == {"jwg": "Joint Working Group"}


def test_an_acronym_the_corpus_writes_is_left_alone():
    assert expander().expand("What about LeT?").acronyms == {}


def test_a_lowercase_phrase_is_found_only_in_the_nearby_passages():
    plain = expander().expand("CFT cooperation")
    assert plain.acronyms == {}
    assert plain.unresolved == ("CFT",)
    wider = expander().expand("CFT cooperation", nearby=TEXTS)
    assert wider.acronyms == {"CFT": "combating financing of terrorism"}
    assert wider.unresolved == ()


def test_a_common_word_is_not_taken_for_an_acronym():
    assert expander().unknown_acronyms("war in Paris") == []


def test_a_spelling_variant_maps_to_the_corpus_word():
    expansion = expander().expand("What about al-Qaeda?")
    assert expansion.corrections == {"qaeda": "qaida"}
    assert "qaida" in expansion.lexical_text().split()


def test_a_word_far_from_every_corpus_word_is_not_corrected():
    assert expander().expand("What about bananas?").corrections == {}


def test_corrections_are_remembered_per_word_and_forgotten_when_full(monkeypatch):
    import ctqa.expansion

    monkeypatch.setattr(ctqa.expansion, "CORRECTIONS_KEPT", 2)
    e = expander()
    searched = []
    closest = e.closest
    monkeypatch.setattr(e, "closest", lambda word: searched.append(word) or closest(word))
    assert e.expand("al-Qaeda bananas").corrections == {"qaeda": "qaida"}
    assert e.expand("bananas, al-Qaeda?").corrections == {"qaeda": "qaida"}
    assert searched == ["qaeda", "bananas"]  # the second question searched nothing
    e.expand("terrorrism")  # a third word: the memory was full, so it starts again
    assert e.expand("al-Qaeda").corrections == {"qaeda": "qaida"}
    assert searched == ["qaeda", "bananas", "terrorrism", "qaeda"]


def test_names_give_initials_with_and_without_connectors():
    found = dict(names_in("the Ministry of External Affairs said"))
    assert found["mea"] == "Ministry of External Affairs"
    assert found["moea"] == "Ministry of External Affairs"
