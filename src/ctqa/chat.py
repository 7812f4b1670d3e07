"""What the chat does with a bot: answer a question with the page's controls, keep the
conversation's own history, show a cited passage in its statement, record votes. The reply is
`render.reply` with the answering sentence marked by `<mark>`: the same words the CLI prints.
"""

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import BadQuestion
from .feedback import FeedbackLog, Turn
from .gradio_setup import gr
from .questions import check_length
from .render import escape_markdown, html_mark, reply
from .results import Answer, Citation
from .source_panel import source_html


def reply_markdown(answer: Answer) -> str:
    """The chat reply: `render.reply` with the answering sentences marked in yellow."""
    return reply(answer, mark=html_mark)


def problem_markdown(exc: Exception) -> str:
    """A refused question, as the chat shows it."""
    return f"**Cannot ask that:** {escape_markdown(str(exc))}"


def question_markdown(question: object) -> str:
    """The user's question shown literally in the chat, whatever it contains."""
    text = question if isinstance(question, str) else repr(question)
    text = "".join(c if c.isprintable() or c in "\t\n" else "\ufffd" for c in text)
    if len(text) > 300:
        text = text[:300] + " …"
    # '#' too: a question starting with it must not become a heading
    return escape_markdown(text).replace("#", "\\#") or "_(empty)_"


def citation_choices(turn: Turn) -> list[tuple[str, str]]:
    """Radio choices for a reply's citations (or nearest passages), values '0', '1', ..."""

    def label(i: int, c: Citation) -> str:
        if turn.abstained:
            return f"¶{c.paragraph} · {c.title} (does not answer)"
        return f"{i + 1}. ¶{c.paragraph} · {c.title}"

    return [(label(i, c), str(i)) for i, c in enumerate(turn.citations)]


# What an ask returns to leave the page as it is: a skip for each of its 7 outputs (app.py): the
# question box, the chat, its records, and the source column's 4 (`ChatService.sources`).
NO_CHANGE = (gr.skip(),) * 7
SOURCES_UNCHANGED = NO_CHANGE[3:]
# What catching up returns when the page is up to date: its outputs are the ask's but the box.
CAUGHT_UP = NO_CHANGE[1:]


@dataclass
class PageConversation:
    """One page's conversation as the server last answered it: the chat's messages and their
    records. Its questions are answered one at a time, each after the ones before it
    (`answering`); a clear counts (`cleared`), so that a reply on its way when it came is
    dropped instead of kept."""

    messages: list = field(default_factory=list)
    turns: list = field(default_factory=list)
    cleared: int = 0
    answering: threading.Lock = field(default_factory=threading.Lock)
    _state: threading.Lock = field(default_factory=threading.Lock)  # the three fields above

    def now(self) -> tuple[int, list, list]:
        with self._state:
            return self.cleared, self.messages, self.turns

    def keep(self, cleared: int, messages: list, turns: list) -> bool:
        """Keep an exchange's outcome unless the chat was cleared since `now` said `cleared`."""
        with self._state:
            if self.cleared != cleared:
                return False
            self.messages, self.turns = messages, turns
            return True

    def clear(self) -> None:
        with self._state:
            self.cleared += 1
            self.messages, self.turns = [], []


class PageConversations:
    """The conversations of the pages that asked most recently, by Gradio session (at most
    `size`: a page forgotten here starts again from what it shows)."""

    def __init__(self, size: int = 4096):
        self.size = size
        self._pages: OrderedDict[str, PageConversation] = OrderedDict()
        self._lock = threading.Lock()

    def known(self, session: str | None) -> PageConversation | None:
        """The page's conversation if this server holds it (nothing is added; None for no
        page)."""
        with self._lock:
            return self._pages.get(session)

    def of(self, session: str) -> tuple[PageConversation, bool]:
        """The page's conversation, and whether it is new here."""
        with self._lock:
            page = self._pages.get(session)
            new = page is None
            if new:
                page = self._pages[session] = PageConversation()
            self._pages.move_to_end(session)
            while len(self._pages) > self.size:
                self._pages.popitem(last=False)
            return page, new


class ChatService:
    """What the page and the API do with a bot: answer, show sources, record votes."""

    def __init__(self, bot):
        self.bot = bot
        self.settings = bot.settings
        bot.load()  # noqa: B018 -- loads the model and the index before the first question
        self.feedback = FeedbackLog(self.settings.feedback_file)
        self.pages = PageConversations()

    @property
    def documents(self) -> dict:
        """The statements of the index generation in use (a new one is picked up live)."""
        return self.bot.documents()

    def doc_ids(self, selected: Iterable[str] | None) -> set[str] | None:
        """The statement ids to search, or None for all; unknown ids are a `BadQuestion`."""
        if selected is not None and (
            not isinstance(selected, (list, tuple)) or not all(isinstance(s, str) for s in selected)
        ):
            raise BadQuestion(
                "documents must be a list of statement ids, e.g. "
                f"[{next(iter(self.documents))!r}]; leave it empty to search them all."
            )
        chosen = set(selected or ())
        if not chosen:  # all of them: no need to read which there are
            return None
        unknown = chosen - set(self.documents)
        if unknown:
            shown = sorted(unknown)[:5]  # a caller may send thousands; echo only a few
            more = f" and {len(unknown) - len(shown)} more" if len(unknown) > len(shown) else ""
            raise BadQuestion(
                f"unknown statement id(s) {', '.join(shown)}{more}; "
                f"known: {', '.join(sorted(self.documents))}."
            )
        return chosen

    def answer(self, question, history, k, documents) -> Answer:
        """`bot.answer` with the page's controls; `BadQuestion` for anything unusable."""
        check_length(question, self.settings.max_question_chars)
        if isinstance(k, float) and k.is_integer():
            k = int(k)
        return self.bot.answer(question, history=history, k=k, doc_ids=self.doc_ids(documents))

    def api_chat(
        self,
        question: str,
        history: list[dict] | None = None,
        k: int = 3,
        documents: list[str] | None = None,
    ) -> str:
        """Answer `question` from the statements, as Markdown. `history`: earlier chat messages
        ({"role", "content"}) or questions, oldest first; `k`: passages to cite;
        `documents`: statement ids to search (all when empty)."""
        try:
            return reply_markdown(self.answer(question, history, k, documents))
        except BadQuestion as exc:
            return problem_markdown(exc)

    def statement(self, doc_id: str | None, citation: Citation | None = None, nearest=False):
        """The source panel for `doc_id` in the index in use; a statement that has left it
        shows the first one instead, and a citation of a statement that changed since its
        reply is not marked in the new text, each with a note saying so."""
        documents = self.documents
        doc = documents.get(doc_id)
        if doc is None:
            doc = next(iter(documents.values()))
            if doc_id is not None:
                return source_html(doc, None, "that statement is no longer indexed; the first")
        if citation is not None and doc.text[citation.start : citation.end] != citation.text:
            return source_html(doc, None, "the statement changed since that reply; ask again")
        if citation is None:
            note = "the whole statement"
        elif nearest:
            note = "nearest passage, which does not answer the question"
        else:
            note = "passage cited"
        return source_html(doc, citation, note, nearest)

    def statement_lists(self):
        """The page's statement lists as the index in use has them (a page opened after
        `ctqa index` lists the statements indexed since), and the first statement shown."""
        documents = self.documents
        choices = document_choices(documents)
        first = next(iter(documents))
        return (
            gr.CheckboxGroup(choices=choices, value=[], visible=len(documents) > 1),
            gr.Dropdown(choices=choices, value=first),
            self.statement(first),
        )

    def reading(self, doc_id: str):
        """The statement chooser showing `doc_id`, with the statements indexed now."""
        return gr.Dropdown(choices=document_choices(self.documents), value=doc_id)

    def respond(self, question, messages, k, documents, turns, request: gr.Request = None):
        """One exchange on the page: the updated chat, its records and the source panel.

        A page's questions are answered in the order asked, each after the exchanges before
        it, whatever the page held when it was asked (a question typed, then an example
        clicked before the reply); the reply to a question asked before the chat was cleared
        is dropped (nothing changes)."""
        session = getattr(request, "session_hash", None)
        if session is None:  # called directly, not by the page
            return self._exchange(question, messages, k, documents, turns)
        page, new = self.pages.of(session)
        with page.answering:
            cleared, shown, records = page.now()
            if new:  # this server has not seen the page (or forgot it): it starts from it
                shown, records = list(messages or []), list(turns or [])
            elif len(messages or []) > len(shown):
                return NO_CHANGE  # asked before a clear: the page is empty now
            found = self._exchange(question, shown, k, documents, records)
            return found if page.keep(cleared, found[1], found[2]) else NO_CHANGE

    def catch_up(self, messages, request: gr.Request = None):
        """The page as the server last left it (the chat, its records and the sources of the
        last question answered), where it shows fewer messages: replies come back in the order
        they are ready, so an earlier reply can arrive after a later one and draw the page
        without it. Run after every reply; it never takes an exchange away, and leaves an
        empty (cleared) page empty."""
        page = self.pages.known(getattr(request, "session_hash", None))
        if page is None:  # called directly, or a page this server does not hold
            return CAUGHT_UP
        _, shown, records = page.now()
        # An empty page was cleared (a reply draws its own exchange), maybe before the server
        # heard of it: catching up must not bring the old chat back.
        if not messages or len(messages) >= len(shown):
            return CAUGHT_UP
        answered = [t for t in records if t.error is None]
        sources = self.sources(answered[-1]) if answered else SOURCES_UNCHANGED
        return shown, records, *sources

    def clear(self, request: gr.Request = None):
        """The chat was cleared: forget its conversation; replies on their way are dropped."""
        session = getattr(request, "session_hash", None)
        if session is not None:
            self.pages.of(session)[0].clear()

    def _exchange(self, question, messages, k, documents, turns):
        messages, turns = list(messages or []), list(turns or [])
        shown = [_msg("user", question_markdown(question))]
        try:
            answer = self.answer(question, earlier_questions(messages, turns), k, documents)
        except BadQuestion as exc:
            turn = Turn(len(messages) + 1, str(question), str(question), False, (), str(exc))
            reply = problem_markdown(exc)
        else:
            cited = tuple(answer.citations or answer.nearest)
            turn = Turn(len(messages) + 1, answer.question, answer.query, answer.abstained, cited)
            reply = reply_markdown(answer)
        messages += [*shown, _msg("assistant", reply)]
        return "", messages, [*turns, turn], *self.sources(turn)

    def sources(self, turn: Turn) -> tuple:
        """The source column for a reply: (the reply's record, its citation picker, its first
        passage in its statement, the statement list); a refused question leaves it as it is,
        and a reply that cites nothing leaves the statement shown."""
        if turn.error is not None:
            return SOURCES_UNCHANGED
        radio = citation_radio(turn)
        if not turn.citations:
            return turn, radio, gr.skip(), gr.skip()
        first = turn.citations[0]
        panel = self.statement(first.doc_id, first, turn.abstained)
        return turn, radio, panel, self.reading(first.doc_id)

    def pick_citation(self, choice, last: Turn | None):
        """Show the chosen citation of the last reply in its statement."""
        try:
            c = last.citations[int(choice)]
        except (AttributeError, TypeError, ValueError, IndexError):
            return gr.skip(), gr.skip()
        return self.statement(c.doc_id, c, last.abstained), self.reading(c.doc_id)

    def read(self, doc_id):
        """Show a whole statement, nothing highlighted."""
        return self.statement(doc_id)

    def vote(self, turns, data: gr.LikeData):
        """Record a thumbs up or down on a reply."""
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        turn = next((t for t in turns or () if t.message == index), None)
        if turn is None:
            return
        vote = {True: "up", False: "down"}.get(data.liked, str(data.liked))
        self.feedback.record(turn, vote)


def document_choices(documents: dict) -> list[tuple[str, str]]:
    """(label, id) of each statement, for the page's lists."""
    return [(d.title + (f" ({d.date})" if d.date else ""), d.id) for d in documents.values()]


def citation_radio(turn: Turn | None):
    """The citation picker for a new reply (its first passage selected), or emptied."""
    choices = citation_choices(turn) if turn is not None else []
    label = (
        "Nearest passages (they do not answer the last question)"
        if turn is not None and turn.abstained
        else "Passages cited in the last reply"
    )
    return gr.Radio(choices=choices, value="0" if choices else None, label=label)


def _msg(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def earlier_questions(messages: list, turns: list[Turn]) -> list:
    """The user's earlier questions as typed (the chat shows them escaped; the turns keep them),
    or the chat messages themselves when this session has no turns (an API caller's history)."""
    if turns:
        return [t.question for t in turns if t.error is None]
    return [m for m in messages if isinstance(m, dict)]
