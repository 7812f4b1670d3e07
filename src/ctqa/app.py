"""The Gradio chat: ask, check each cited passage in its statement, vote. Only here is Gradio used.

The page has the conversation on the left and the source panel on the right (below it on a phone).
A reply quotes the answering sentence and lists numbered citations; picking a citation shows the
whole statement with that passage highlighted and scrolled into view. The API endpoint `/chat`
takes a question (optionally the history, the number of passages and statement ids) and returns
the reply as Markdown:

>>> from gradio_client import Client                                          # doctest: +SKIP
>>> reply = Client("http://127.0.0.1:7860/").predict(
...     "Who led the French delegation?", api_name="/chat")                     # doctest: +SKIP
>>> print(reply[:60])                                                        # doctest: +SKIP
> Mahaveer Singhvi, Joint Secretary (Counter Terrorism) at th
"""

import html
import json
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from .bot import Answer, Citation  # noqa: E402
from .chunking import paragraph_spans  # noqa: E402
from .config import CONCURRENCY, QUEUE_SIZE  # noqa: E402
from .errors import BadQuestion, CtqaError  # noqa: E402
from .render import around_answer, escape_markdown, html_mark, reply  # noqa: E402

EXAMPLES = [
    "Who led the Indian delegation?",
    "Where was the meeting held?",
    "Which terrorist groups were named?",
    "What did they say about Afghanistan?",
    "Did they discuss terror financing?",
]
INTRO = (
    "# ctqa: ask the statements\n"
    "Every answer is the statements' own words, never written by a model: the answering sentence "
    "is quoted and each passage is cited by statement, date and paragraph. Pick a citation to see "
    "it highlighted in the full statement. When the statements do not say, ctqa says so."
)
ANSWERING = "answering"  # the chat, the page and the examples share one queue and its limit
# Largest request body: room for a 1 MB question (answered with a clear refusal), no more.
MAX_BODY_BYTES = 4 * 2**20

# Scoped to the source panel (gr.HTML css_template): the statement scrolls inside its own box so
# that showing a passage never moves the page away from the conversation.
SOURCE_CSS = """
.statement { max-height: 60vh; overflow-y: auto; padding: 0 0.75rem; line-height: 1.6; }
.statement h3 { margin: 0.5rem 0 0.25rem; }
.statement .meta { color: var(--body-text-color-subdued); margin: 0 0 0.75rem; }
.statement p { margin: 0 0 0.9rem; }
.statement .pn { color: var(--body-text-color-subdued); font-size: 0.85em; margin-right: 0.4em; }
.statement .cited { background: rgba(250, 204, 21, 0.18); border-radius: 3px; }
.statement mark { background: #fde047; color: #111; padding: 0 2px; border-radius: 3px; }
.statement.nearest mark { background: #d1d5db; }
.statement.nearest .cited { background: rgba(156, 163, 175, 0.15); }
.statement.nearest p.target { border-left-color: #9ca3af; }
.statement p.target { border-left: 3px solid #eab308; padding-left: 0.5rem; }
"""
# Page-wide rules, injected into <head> by the source panel (Gradio 6 takes page CSS only at launch,
# and the app must look the same however it is launched).
PAGE_CSS = """
#chat mark { background: #fef3c7; color: #111; padding: 0 2px; border-radius: 3px; }
#chat blockquote { border-left: 4px solid #eab308; }
#chat strong { font-weight: 600; }
"""
# Runs in the browser when the panel loads: keep the highlighted passage in view inside its box.
SOURCE_JS = """
const show = () => {
  const box = element.querySelector('.statement');
  if (!box) return;
  const mark = box.querySelector('mark');
  box.scrollTop = mark ? Math.max(0, mark.offsetTop - box.offsetTop - box.clientHeight / 3) : 0;
};
watch('value', show);
show();
"""
# Runs in the browser after each reply: scroll the conversation to the start of the new exchange.
SCROLL_TO_REPLY_JS = """
() => {
  setTimeout(() => {
    const log = document.querySelector('#chat [role=log]');
    const asked = log ? log.querySelectorAll('[data-testid=user]') : [];
    if (!asked.length) return;
    const top = asked[asked.length - 1].getBoundingClientRect().top;
    log.scrollTop += top - log.getBoundingClientRect().top - 40;  // clear of the label
  }, 50);
}
"""


@dataclass(frozen=True)
class Turn:
    """One exchange as the feedback log records it; `message` is the reply's index in the chat."""

    message: int
    question: str
    query: str
    abstained: bool
    citations: tuple[Citation, ...]
    error: str | None = None


class FeedbackLog:
    """Appends votes on replies to a JSON-lines file, one whole line per vote."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def record(self, turn: Turn, vote: str) -> dict:
        """Append one vote on `turn`; returns the record written."""
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "vote": vote,
            "question": turn.question,
            "query": turn.query,
            "abstained": turn.abstained,
            "error": turn.error,
            "citations": [] if turn.abstained else _places(turn.citations),
            "nearest": _places(turn.citations) if turn.abstained else [],
        }
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)
        return entry


def _places(citations: Iterable[Citation]) -> list[dict]:
    return [
        {"doc": c.doc_id, "paragraph": c.paragraph, "start": c.start, "end": c.end}
        for c in citations
    ]


# ---- the reply, as Markdown ----------------------------------------------------------------


def reply_markdown(answer: Answer) -> str:
    """The chat reply: `render.reply` with the answering sentences marked in yellow."""
    return reply(answer, mark=html_mark)


def check_length(question: object, limit: int) -> None:
    """`BadQuestion` when `question` is longer than the question box admits (`limit`
    characters, spaces and newlines included), so that API callers meet the same limit."""
    if isinstance(question, str) and len(question) > limit:
        raise BadQuestion(
            f"the question is {len(question):,} characters long, over the limit of {limit:,}; "
            "shorten it to what you want to know."
        )


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


# ---- the source panel, as HTML -------------------------------------------------------------


def _safe(text: str) -> str:
    """HTML-escaped text that cannot be read as a template placeholder either (`${}`, `{{}}`)."""
    return html.escape(text).replace("$", "&#36;").replace("{", "&#123;").replace("}", "&#125;")


def source_html(
    doc, citation: Citation | None = None, note: str = "", nearest: bool = False
) -> str:
    """The whole statement `doc`, paragraphs numbered; `citation`'s passage marked when given
    (in grey when `nearest`: a passage close to the question that does not answer it)."""
    head = f"<h3>{_safe(doc.title)}</h3>"
    meta = [f"dated {_safe(doc.date)}"] if doc.date else []
    if note:
        meta.append(_safe(note))
    if meta:
        head += f"<p class='meta'>{' · '.join(meta)}</p>"
    body = "".join(
        _paragraph_html(doc.text, number, span.start, span.end, citation)
        for number, span in enumerate(paragraph_spans(doc.text, doc.body_start), 1)
    )
    kind = "statement nearest" if nearest else "statement"
    return f"<div class='{kind}'>{head}{body}</div>"


def _paragraph_html(text: str, number: int, start: int, end: int, c: Citation | None) -> str:
    inside = c is not None and start <= c.start and c.end <= end
    if not inside:
        content = _safe(text[start:end])
    else:
        hs, he = c.highlight
        content = (
            _safe(text[start : c.start])
            + "<span class='cited'>"
            + _safe(text[c.start : hs])
            + f"<mark>{_sentence_html(text, hs, he, c.answer)}</mark>"
            + _safe(text[he : c.end])
            + "</span>"
            + _safe(text[c.end : end])
        )
    target = " class='target'" if inside else ""
    return f"<p{target}><span class='pn'>¶{number}</span>{content}</p>"


def _sentence_html(text: str, start: int, end: int, answer: tuple[int, int] | None) -> str:
    """The answering sentence, its answer span (when inside it) in bold."""
    parts = around_answer(text, start, end, answer)
    if parts is None:
        return _safe(text[start:end])
    before, span, after = (_safe(p) for p in parts)
    return f"{before}<b>{span}</b>{after}"


def citation_choices(answer: Answer) -> list[tuple[str, str]]:
    """Radio choices for the reply's citations (or nearest passages), values '0', '1', ..."""
    if answer.abstained:
        return [
            (f"¶{c.paragraph} · {c.title} (does not answer)", str(i))
            for i, c in enumerate(answer.nearest)
        ]
    return [
        (f"{i + 1}. ¶{c.paragraph} · {c.title}", str(i)) for i, c in enumerate(answer.citations)
    ]


# ---- the app -------------------------------------------------------------------------------


class ChatService:
    """What the page and the API do with a bot: answer, show sources, record votes."""

    def __init__(self, bot):
        self.bot = bot
        self.settings = bot.settings
        bot.retriever  # noqa: B018 -- loads the model and the index before the first question
        self.feedback = FeedbackLog(self.settings.feedback_file)

    @property
    def documents(self) -> dict:
        """The statements of the index generation in use (a new one is picked up live)."""
        return self.bot.retriever.index.documents

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
        unknown = chosen - set(self.documents)
        if unknown:
            shown = sorted(unknown)[:5]  # a caller may send thousands; echo only a few
            more = f" and {len(unknown) - len(shown)} more" if len(unknown) > len(shown) else ""
            raise BadQuestion(
                f"unknown statement id(s) {', '.join(shown)}{more}; "
                f"known: {', '.join(sorted(self.documents))}."
            )
        return chosen or None

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
        """The source panel for `doc_id` (the first statement when unknown)."""
        doc = self.documents.get(doc_id) or next(iter(self.documents.values()))
        if citation is None:
            note = "the whole statement"
        elif nearest:
            note = "nearest passage, which does not answer the question"
        else:
            note = "passage cited"
        return source_html(doc, citation, note, nearest)

    def respond(self, question, messages, k, documents, turns):
        """One exchange on the page: the updated chat, its records and the source panel."""
        messages, turns = list(messages or []), list(turns or [])
        shown = [_msg("user", question_markdown(question))]
        try:
            answer = self.answer(question, _raw_history(messages, turns), k, documents)
        except BadQuestion as exc:
            turn = Turn(len(messages) + 1, str(question), str(question), False, (), str(exc))
            messages += [*shown, _msg("assistant", problem_markdown(exc))]
            return "", messages, [*turns, turn], gr.skip(), gr.skip(), gr.skip(), gr.skip()
        cited = tuple(answer.citations or answer.nearest)
        turn = Turn(len(messages) + 1, answer.question, answer.query, answer.abstained, cited)
        messages += [*shown, _msg("assistant", reply_markdown(answer))]
        radio = _citation_radio(answer)
        if not cited:
            return "", messages, [*turns, turn], turn, radio, gr.skip(), gr.skip()
        panel = self.statement(cited[0].doc_id, cited[0], answer.abstained)
        return "", messages, [*turns, turn], turn, radio, panel, cited[0].doc_id

    def pick_citation(self, choice, last: Turn | None):
        """Show the chosen citation of the last reply in its statement."""
        try:
            c = last.citations[int(choice)]
        except (AttributeError, TypeError, ValueError, IndexError):
            return gr.skip(), gr.skip()
        return self.statement(c.doc_id, c, last.abstained), c.doc_id

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


def _citation_radio(answer: Answer | None):
    """The citation picker for a new reply (its first passage selected), or emptied."""
    choices = citation_choices(answer) if answer is not None else []
    label = (
        "Nearest passages (they do not answer the last question)"
        if answer is not None and answer.abstained
        else "Passages cited in the last reply"
    )
    return gr.Radio(choices=choices, value="0" if choices else None, label=label)


def _msg(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def _raw_history(messages: list, turns: list[Turn]) -> list:
    """The user's earlier questions as typed (the chat shows them escaped; the turns keep them),
    or the chat messages themselves when this session has no turns (an API caller's history)."""
    if turns:
        return [t.question for t in turns if t.error is None]
    return [m for m in messages if isinstance(m, dict)]


def build_app(bot, queue_size: int = QUEUE_SIZE, concurrency: int = CONCURRENCY) -> gr.Blocks:
    """The chat page over `bot`; its API endpoint is `/chat`. At most `concurrency` questions
    are answered at once and `queue_size` wait; past that a caller is told the app is busy."""
    service = ChatService(bot)
    with gr.Blocks(title="ctqa: ask the statements", analytics_enabled=False) as app:
        gr.Markdown(INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=340):
                chat = _chat_column(service)
            with gr.Column(scale=2, min_width=300, elem_id="sources"):
                sources = _sources_column(service)
        _wire(service, chat, sources)
        gr.api(service.api_chat, api_name="chat", concurrency_id=ANSWERING)
    app.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    return app


def _chat_column(service: ChatService) -> SimpleNamespace:
    """The conversation, the question box, examples and search options."""
    documents = service.documents
    ui = SimpleNamespace(turns=gr.State([]))
    ui.chatbot = gr.Chatbot(
        label="Conversation",
        elem_id="chat",
        height="min(560px, 70vh)",
        autoscroll=False,  # SCROLL_TO_REPLY_JS shows the start of the reply instead of its end
        placeholder="Ask a question below, or pick an example.",
        feedback_options=("Like", "Dislike"),
        buttons=["copy"],
        sanitize_html=True,
        allow_tags=False,
        latex_delimiters=[],  # statements hold no maths; "$$" in one must stay text
    )
    ui.question = gr.Textbox(
        show_label=False,
        placeholder="Ask about the statement, e.g. Who led the Indian delegation?",
        max_length=service.settings.max_question_chars,
        submit_btn="Ask",
        elem_id="question",
        autofocus=True,
    )
    ui.examples = gr.Examples(
        EXAMPLES, inputs=[ui.question], label="Examples", api_visibility="private"
    )
    ui.k = gr.Slider(
        1, service.settings.max_k, value=3, step=1, label="Passages to cite", elem_id="k"
    )
    ui.filter = gr.CheckboxGroup(
        _document_choices(documents),
        label="Search only these statements (none ticked: all)",
        visible=len(documents) > 1,
        elem_id="filter",
    )
    return ui


def _sources_column(service: ChatService) -> SimpleNamespace:
    """The citation picker, the statement chooser and the statement itself."""
    first = next(iter(service.documents))
    gr.Markdown("### Sources")
    ui = SimpleNamespace(last=gr.State(None), first=first)
    ui.picked = gr.Radio(
        [],
        label="Passages cited in the last reply",
        info="Pick one to see it in the statement.",
        elem_id="citations",
    )
    ui.reading = gr.Dropdown(
        _document_choices(service.documents),
        value=first,
        label="Read a statement",
        elem_id="reading",
    )
    ui.panel = gr.HTML(
        service.statement(first),
        css_template=SOURCE_CSS,
        js_on_load=SOURCE_JS,
        head=f"<style>{PAGE_CSS}</style>",
        elem_id="source",
    )
    return ui


def _document_choices(documents: dict) -> list[tuple[str, str]]:
    return [(d.title + (f" ({d.date})" if d.date else ""), d.id) for d in documents.values()]


def _wire(service: ChatService, chat: SimpleNamespace, sources: SimpleNamespace) -> None:
    """Connect the page's events; only `/chat` (added by `build_app`) is a documented API."""
    ask = dict(
        fn=service.respond,
        inputs=[chat.question, chat.chatbot, chat.k, chat.filter, chat.turns],
        outputs=[
            chat.question,
            chat.chatbot,
            chat.turns,
            sources.last,
            sources.picked,
            sources.panel,
            sources.reading,
        ],
        api_visibility="undocumented",
        concurrency_id=ANSWERING,
        show_progress_on=[chat.chatbot],  # a busy or failed ask marks the conversation only
    )
    for event, name in (
        (chat.question.submit, "ask"),
        (chat.examples.load_input_event.then, "ask_example"),
    ):
        event(**ask, api_name=name).then(None, js=SCROLL_TO_REPLY_JS)
    sources.picked.input(
        service.pick_citation,
        [sources.picked, sources.last],
        [sources.panel, sources.reading],
        api_visibility="private",
    )
    sources.reading.input(
        service.read, [sources.reading], [sources.panel], api_visibility="private"
    )
    chat.chatbot.like(
        service.vote, [chat.turns], None, api_name="vote", api_visibility="undocumented"
    )
    chat.chatbot.clear(
        lambda: ([], None, _citation_radio(None), service.statement(sources.first), sources.first),
        None,
        [chat.turns, sources.last, sources.picked, sources.panel, sources.reading],
        api_visibility="private",
    )


# ---- the server ----------------------------------------------------------------------------


def read_auth_file(path: Path) -> list[tuple[str, str]]:
    """`user:password` lines of `path` (blank lines and `#` comments skipped) as login pairs."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CtqaError(f"cannot read the password file {path} ({exc}).") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user.strip() or not password:
            raise CtqaError(f"{path}, line {number}: write it as user:password.")
        pairs.append((user.strip(), password))
    if not pairs:
        raise CtqaError(f"{path} holds no user:password line; add one to protect the chat.")
    return pairs


def launch_options(bot, auth: list[tuple[str, str]] | None = None) -> dict:
    """Keyword arguments for `Blocks.launch` that expose the chat and nothing else: no share
    link, no monitoring page, no run history, no file uploads or server-side fetches, the
    statements and the index never served, request bodies capped; `auth` asks for a login."""
    private = [bot.corpus, bot.index_dir, bot.settings.feedback_file.parent]
    return dict(
        share=False,
        auth=auth or None,
        enable_monitoring=False,
        run_history=False,
        ssr_mode=False,
        mcp_server=False,
        show_error=False,
        footer_links=["api"],
        max_file_size=MAX_BODY_BYTES,
        blocked_paths=[str(Path(p).resolve()) for p in private if p is not None],
        app_kwargs={"middleware": [Middleware(Guard, max_body=MAX_BODY_BYTES)]},
    )


def serve(
    bot,
    host: str = "127.0.0.1",
    port: int = 7860,
    auth: list[tuple[str, str]] | None = None,
    queue_size: int = QUEUE_SIZE,
    concurrency: int = CONCURRENCY,
    **launch,
):
    """Load the index, then serve the chat until interrupted (see `launch_options`)."""
    app = build_app(bot, queue_size, concurrency)  # loads the model and index before a visitor
    app.launch(server_name=host, server_port=port, **(launch_options(bot, auth) | launch))
    return app


class Guard:
    """ASGI middleware in front of Gradio's routes. Refuses (403) the routes this app does not
    use and that would let a caller store files on the server or make it fetch a URL
    (`/upload`, `/proxy=`, `/file=http...`), and (413) request bodies over `max_body` bytes,
    which are never read into memory beyond that."""

    def __init__(self, app, max_body: int = MAX_BODY_BYTES):
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if refused_path(scope.get("path", "")):
            await _plain(send, 403, "Not allowed.")
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        fits = declared.isdigit() and int(declared) <= self.max_body
        first = await _read_body(receive, self.max_body) if fits else None
        if first is None:
            await _plain(send, 413, f"The request is larger than {self.max_body:,} bytes.")
            return
        await self.app(scope, _replay(first, receive), send)


async def _read_body(receive, limit: int) -> dict | None:
    """The request's body as one message (or the disconnect that came instead), or None once
    more than `limit` bytes arrived: bodies sent in chunks, with no declared length, too."""
    parts, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return message
        parts.append(message.get("body", b""))
        size += len(parts[-1])
        if size > limit:
            return None
        if not message.get("more_body", False):
            return {"type": "http.request", "body": b"".join(parts), "more_body": False}


FETCHING = re.compile(r"/gradio_api/(upload|proxy=|file[=/]\s*[a-z][a-z0-9+.-]*:)")


def refused_path(path: str) -> bool:
    """Whether a request for `path` (as the server decoded it) is refused, however encoded.

    >>> refused_path("/gradio_api/file=https://example.com/x.png")
    True
    >>> refused_path("/gradio_api/file=http%253A%252F%252Fexample.com"), refused_path("/config")
    (True, False)
    """
    for _ in range(4):  # undo double and triple percent-encoding
        path = unquote(path)
    return FETCHING.search(path.lower()) is not None


def _replay(first: dict, receive):
    """A `receive` that gives `first`, then whatever the client sends next."""
    pending = [first]

    async def replayed():
        return pending.pop() if pending else await receive()

    return replayed


async def _plain(send, status: int, text: str) -> None:
    body = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
