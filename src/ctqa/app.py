"""The chat page: the conversation on the left, the source panel on the right (below it on a
phone), and `/chat`, the one documented API endpoint. What the page does is in chat.py; how it
is served, in server.py.

>>> from gradio_client import Client                                          # doctest: +SKIP
>>> reply = Client("http://127.0.0.1:7860/").predict(
...     "Who led the French delegation?", api_name="/chat")                     # doctest: +SKIP
>>> print(reply[:60])                                                        # doctest: +SKIP
> Mahaveer Singhvi, Joint Secretary (Counter Terrorism) at th
"""

from types import SimpleNamespace

from .chat import ChatService, citation_radio, document_choices
from .config import CONCURRENCY, QUEUE_SIZE
from .gradio_setup import gr
from .source_panel import SOURCE_CSS, SOURCE_JS

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

# Page-wide rules, injected into <head> by the source panel (Gradio 6 takes page CSS only at launch,
# and the app must look the same however it is launched).
PAGE_CSS = """
#chat mark { background: #fef3c7; color: #111; padding: 0 2px; border-radius: 3px; }
#chat blockquote { border-left: 4px solid #eab308; }
#chat strong { font-weight: 600; }
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
        # A page opened after `ctqa index` switched in a new generation lists its statements.
        # Outside the queue: a busy app still opens its page (and clears a chat) at once.
        app.load(
            service.statement_lists,
            None,
            [chat.filter, sources.reading, sources.panel],
            api_visibility="private",
            queue=False,
        )
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
        document_choices(documents),
        label="Search only these statements (none ticked: all)",
        visible=len(documents) > 1,
        elem_id="filter",
    )
    return ui


def _sources_column(service: ChatService) -> SimpleNamespace:
    """The citation picker, the statement chooser and the statement itself."""
    first = next(iter(service.documents))
    gr.Markdown("### Sources")
    ui = SimpleNamespace(last=gr.State(None))
    ui.picked = gr.Radio(
        [],
        label="Passages cited in the last reply",
        info="Pick one to see it in the statement.",
        elem_id="citations",
    )
    ui.reading = gr.Dropdown(
        document_choices(service.documents),
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


def _wire(service: ChatService, chat: SimpleNamespace, sources: SimpleNamespace) -> None:
    """Connect the page's events; only `/chat` (added by `build_app`) is a documented API."""

    def ask_example(example, messages, k, documents, turns, request: gr.Request):
        """An example clicked: its own words are asked, not what the question box holds by
        the time the ask reads it (an earlier reply arriving meanwhile empties the box)."""
        index = example[0] if isinstance(example, (list, tuple)) and example else example
        question = EXAMPLES[index] if isinstance(index, int) and 0 <= index < len(EXAMPLES) else ""
        return service.respond(question, messages, k, documents, turns, request)

    ask = dict(
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
    page = [chat.chatbot, chat.k, chat.filter, chat.turns]
    asks = []
    for event, name, fn, asked in (
        (chat.question.submit, "ask", service.respond, chat.question),
        (chat.examples.load_input_event.then, "ask_example", ask_example, chat.examples.dataset),
    ):
        asks.append(event(fn, [asked, *page], **ask, api_name=name))
        caught_up = asks[-1].then(
            service.catch_up,
            [chat.chatbot],
            ask["outputs"][1:],  # all but the question box
            api_visibility="private",
            queue=False,
            show_progress="hidden",
        )
        caught_up.then(None, js=SCROLL_TO_REPLY_JS)
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

    def cleared(request: gr.Request):
        service.clear(request)
        _, reading, panel = service.statement_lists()
        return [], None, citation_radio(None), panel, reading

    chat.chatbot.clear(
        cleared,
        None,
        [chat.turns, sources.last, sources.picked, sources.panel, sources.reading],
        api_visibility="private",
        queue=False,
        cancels=asks,  # a reply still on its way is not shown in the emptied chat
    )
