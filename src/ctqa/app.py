"""The Gradio chat. Gradio is imported only here."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

EXAMPLES = [
    "Who led the Indian delegation?",
    "Where was the meeting held?",
    "Which terrorist groups were named?",
    "What did they say about Afghanistan?",
]


def build_app(bot):
    """A chat over `bot`; its API endpoint is `/chat`."""
    import gradio as gr

    from .errors import BadQuestion

    def chat(message, history):
        try:
            return bot.answer(message, history=history).text
        except BadQuestion as exc:
            return f"**Cannot ask that:** {exc}"

    return gr.ChatInterface(
        chat,
        title="ctqa — cited answers from the statement",
        description="Answers quote the statement itself; every passage is cited by paragraph.",
        examples=EXAMPLES,
        api_name="chat",
        analytics_enabled=False,
    )


def serve(bot, host: str = "127.0.0.1", port: int = 7860, **launch) -> None:
    """Load the index, then serve the chat until interrupted."""
    _ = bot.retriever  # load the model and index before the first visitor waits for them
    build_app(bot).launch(server_name=host, server_port=port, share=False, **launch)
