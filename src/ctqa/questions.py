"""What a caller may ask: the question, `k` and the history, checked and cleaned, or
`BadQuestion` saying what to fix."""

from __future__ import annotations

import unicodedata

from .errors import BadQuestion


def clean_question(question: object, limit: int) -> str:
    """The question as text to search, or `BadQuestion` saying what to fix.

    >>> clean_question("  Who led\\tthe delegation? ", 1000)
    'Who led the delegation?'
    """
    if not isinstance(question, str):
        raise BadQuestion(
            f"the question must be text, not {type(question).__name__}; pass a string such as "
            "'Who led the Indian delegation?'."
        )
    if any("\ud800" <= c <= "\udfff" for c in question):
        raise BadQuestion("the question contains invalid characters (lone surrogates); retype it.")
    if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in question):
        raise BadQuestion(
            "the question contains control characters (such as NUL); remove them and ask again."
        )
    text = " ".join(question.split())
    if not text:
        raise BadQuestion(
            "the question is empty; type a question, e.g. 'Who led the Indian delegation?'."
        )
    check_length(text, limit)
    if not any(c.isalnum() for c in text):
        raise BadQuestion("the question has no words in it; ask it in words.")
    return text


def check_k(k: object, limit: int) -> int:
    """`k` as a whole number from 1 to `limit`, or `BadQuestion`."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= limit:
        raise BadQuestion(
            f"k (the number of passages) must be a whole number from 1 to {limit}, not {k!r}."
        )
    return k


def user_turns(history: object, limit: int, max_chars: int) -> list[str]:
    """The user's earlier questions from `history` (strings, or chat messages with `role` and
    `content`), oldest first, at most the last `limit`."""
    if history is None or limit == 0:
        return []
    if isinstance(history, (str, bytes)) or not isinstance(history, (list, tuple)):
        raise BadQuestion(
            "history must be a list of earlier questions or of chat messages "
            "({'role': 'user', 'content': '...'}), oldest first."
        )
    turns = []
    for item in list(history)[-2 * limit :]:
        if isinstance(item, str):
            content = item
        elif isinstance(item, dict) and "content" in item:
            if item.get("role", "user") != "user":
                continue
            content = _message_text(item["content"])
        else:
            raise BadQuestion(
                f"history entries must be strings or chat messages with 'role' and 'content', "
                f"not {type(item).__name__}."
            )
        try:
            turns.append(clean_question(content, max_chars))
        except BadQuestion:
            continue  # an earlier unusable turn does not spoil this question
    return turns[-limit:]


def _message_text(content: object) -> str:
    """Text of a chat message's content: a string, or a list of parts with 'text'."""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        parts = (p.get("text") if isinstance(p, dict) else p for p in content)
        return " ".join(p for p in parts if isinstance(p, str))
    return ""


def check_length(question: object, limit: int) -> None:
    """`BadQuestion` when `question` is longer than `limit` characters. The chat checks the
    question as typed (spaces and newlines included, as its text box counts), so that API
    callers meet the same limit; `clean_question` checks it once whitespace is tidied."""
    if isinstance(question, str) and len(question) > limit:
        raise BadQuestion(
            f"the question is {len(question):,} characters long, over the limit of {limit:,}; "
            "shorten it to what you want to know."
        )
