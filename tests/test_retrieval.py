"""Retrieval details checked exactly with the fake encoder."""

from __future__ import annotations

import numpy as np
import pytest

from ctqa import Bot, Settings
from ctqa.retrieval import Retriever

PEOPLE = ["Asha Rao", "Jean Dupont", "Meera Iyer", "Luc Martin", "Ravi Nair", "Claire Petit"]


@pytest.fixture
def crowded_bot(tmp_path, fake_encoder):
    """Sixty paragraphs on the same meeting, with more or fewer names in them."""
    folder = tmp_path / "statements"
    folder.mkdir()
    paragraphs = []
    for i in range(60):
        names = " ".join(PEOPLE[: i % len(PEOPLE)]) or "some officials from the ministry"
        paragraphs.append(
            f"In session {i} the delegation was led by {names}. They discussed terrorism "
            f"financing, sanctions and the exchange of information number {i % 7}."
        )
    (folder / "meetings.txt").write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    settings = Settings(candidates=60)
    return Bot(folder, tmp_path / "index", settings=settings, encoder=fake_encoder, log=print)


QUESTIONS = [
    "Who led the delegation on terrorism financing?",
    "Which officials were named in session 4?",
]


def test_name_shares_read_for_few_passages_give_the_ranking_of_all(crowded_bot, monkeypatch):
    retriever = crowded_bot.retriever
    shares = Retriever._name_shares

    def every_passage(self, weighted, score, k, rows, per_unit):
        names = shares(self, rows, per_unit)
        weighted = weighted + self.settings.weight_names * names
        return weighted, weighted, names

    read: list[int] = []

    def counted(self, rows, per_unit):
        read.append(len(rows))
        return shares(self, rows, per_unit)

    stopped_early = names_ranked = 0
    for question in QUESTIONS:
        for k in (1, 3, 10):
            with monkeypatch.context() as patch:
                read.clear()
                patch.setattr(Retriever, "_name_shares", counted)
                pruned = retriever.search(question, k)
                stopped_early += sum(read) < 60
            with monkeypatch.context() as patch:
                patch.setattr(Retriever, "_add_name_shares", every_passage)
                full = retriever.search(question, k)
            assert [h.row for h in pruned.hits] == [h.row for h in full.hits]
            assert np.allclose([h.score for h in pruned.hits], [h.score for h in full.hits])
            assert [h.names for h in pruned.hits] == pytest.approx([h.names for h in full.hits])
            assert pruned.confidence == pytest.approx(full.confidence)
            names_ranked += any(h.names > 0 for h in full.hits)
    assert stopped_early and names_ranked  # both paths were taken
