"""Serving the chat: the launch options that expose the chat and nothing else, the optional
password file, and the ASGI guard in front of Gradio's routes."""

import re
from pathlib import Path
from urllib.parse import unquote

from starlette.middleware import Middleware

from .app import build_app
from .config import CONCURRENCY, QUEUE_SIZE
from .errors import CtqaError

# Largest request body: room for a 1 MB question (answered with a clear refusal), no more.
MAX_BODY_BYTES = 4 * 2**20


def read_auth_file(path: Path) -> list[tuple[str, str]]:
    """`user:password` lines of `path` (blank lines and `#` comments skipped) as login pairs.
    The password is taken as written, spaces included; a byte-order mark (as Windows editors
    write) is not part of the first user name."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CtqaError(f"cannot read the password file {path} ({exc}).") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, sep, password = line.lstrip().partition(":")
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


async def _plain(send, status: int, text: str) -> None:
    body = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
