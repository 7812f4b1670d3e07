"""The `ctqa` command: ask, index, serve, eval. Also `python -m ctqa`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from .config import CONCURRENCY, QUEUE_SIZE
from .errors import BadQuestion, CtqaError


def _bot(args):
    from .bot import Bot

    return Bot(corpus=args.corpus, index=args.index)


def cmd_ask(args) -> int:
    """Answer one question with cited passages.

    Example: ctqa ask "Who led the French delegation?" --json
             ctqa ask "And the Indian one?" --after "Who led the French delegation?"
    """
    bot = _bot(args)
    question = args.question
    if question == "-":
        if sys.stdin is None:
            raise BadQuestion(
                "standard input is closed; pipe the question in, or pass it as an argument."
            )
        question = read_question(sys.stdin.buffer, bot.settings.max_question_chars)
    answer = bot.answer(question, history=args.after or None, k=args.k)
    if args.json:
        text = json.dumps(asdict(answer), ensure_ascii=False, indent=2)
        try:
            text.encode(sys.stdout.encoding or "utf-8")
        except (UnicodeEncodeError, LookupError):  # a console that cannot show it: \u escapes
            text = json.dumps(asdict(answer), indent=2)
        print(text)
    else:
        print(answer.text)
    return 0


def read_question(stream, limit: int) -> str:
    """The question on a binary `stream` as text, reading no more than a question of `limit`
    characters can take; `BadQuestion` when it is longer or not UTF-8."""
    most = 4 * limit + 4096  # UTF-8 takes at most 4 bytes a character; room for spaces
    data = stream.read(most + 1)
    if len(data) > most:
        raise BadQuestion(
            f"the question on standard input is over {most:,} bytes, over the limit of "
            f"{limit:,} characters; shorten it to what you want to know."
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadQuestion(
            "the question on standard input is not valid UTF-8; send UTF-8 text."
        ) from None


def cmd_index(args) -> int:
    """Build the index, or bring it up to date; with --check only report.

    Example: ctqa index --corpus statements/ --index statements.index/
    """
    from .build import build_index
    from .encoder import load_encoder
    from .manifest import check_status, index_settings
    from .minilm import token_counter

    bot = _bot(args)
    if bot.corpus is None:
        raise CtqaError("--index alone cannot be built: pass --corpus DIR with the statements.")
    encoder = load_encoder(bot.settings.threads, backend=bot.settings.encoder_backend)
    expected = index_settings(bot.settings, encoder.name, encoder.weights_sha256, encoder.dim)
    status = check_status(bot.index_dir, bot.corpus, expected)
    if args.check:
        print(f"{bot.index_dir}: {status.state}" + (f" ({status.reason})" if status.reason else ""))
        return 0 if status.fresh else 1
    if status.fresh and not args.force:
        print(f"{bot.index_dir} is up to date with {bot.corpus}.")
        return 0
    print(
        f"Indexing {bot.corpus} into {bot.index_dir} ({status.reason or 'forced'})…",
        file=sys.stderr,
    )
    generation = build_index(
        bot.corpus,
        bot.index_dir,
        encoder,
        bot.settings,
        token_counter(),
        progress=sys.stderr.isatty(),
    )
    manifest = json.loads((generation / "manifest.json").read_text(encoding="utf-8"))
    counts = manifest["counts"]
    build = manifest.get("build", {})
    print(
        f"Indexed {counts['documents']} statements, {counts['passages']} passages, "
        f"{counts['units']} sentences and clauses into {generation} "
        f"({build.get('embedded', '?')} statements embedded, {build.get('reused', 0)} reused)."
    )
    return 0


def cmd_serve(args) -> int:
    """Start the web chat.

    Example: ctqa serve --port 7860
    """
    from .server import read_auth_file, serve

    auth = read_auth_file(args.auth_file) if args.auth_file else None
    if not is_loopback_host(args.host):
        login = "a login is required" if auth else "anyone who reaches it can ask, no login"
        print(
            f"ctqa: warning: serving on {args.host}: the chat is open to other machines ({login}).",
            file=sys.stderr,
        )
    try:
        serve(
            _bot(args),
            host=args.host,
            port=args.port,
            auth=auth,
            queue_size=args.queue_size,
            concurrency=args.concurrency,
        )
    except OSError as exc:
        raise CtqaError(f"cannot serve on {args.host}:{args.port} ({exc}).") from None
    return 0


def is_loopback_host(host: str) -> bool:
    """Whether `host` (a name or an address) is this machine.

    >>> is_loopback_host("127.0.0.1"), is_loopback_host("::1"), is_loopback_host("example.com")
    (True, True, False)
    """
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _count(low: int, high: int):
    """An argparse type: a whole number from `low` to `high`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from {low} to {high}")
        return value

    return parse


def cmd_eval(args) -> int:
    """Run the eval question sets: Hit@1, Hit@3, MRR@5, answer and abstention rates, latency.
    Writes a per-question report and the abstention trade-off (PNG) under eval/results/.

    Example: ctqa eval --set all --compare
    """
    from .eval_report import run_eval

    return run_eval(args.set, args.compare, args.limit, args.index_root, args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ctqa", description="Cited answers from official statements."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def with_corpus(p):
        p.add_argument("--corpus", type=Path, help="folder of statements (*.txt); default seeds/")
        p.add_argument("--index", type=Path, help="index folder; default embeddings/")
        return p

    ask = with_corpus(
        commands.add_parser(
            "ask",
            help="answer a question",
            description=cmd_ask.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    ask.add_argument("question", help="the question; - reads it from standard input")
    ask.add_argument("--json", action="store_true", help="print the answer as JSON")
    ask.add_argument(
        "--after",
        action="append",
        metavar="QUESTION",
        help="an earlier question of the conversation (repeat for more, oldest first); a "
        "question that leans on it is searched with it, and the reply says so",
    )
    ask.add_argument("-k", type=int, default=3, help="number of passages to cite (default 3)")
    ask.set_defaults(run=cmd_ask)

    index = with_corpus(
        commands.add_parser(
            "index", help="build or update the index", description=cmd_index.__doc__
        )
    )
    index.add_argument(
        "--check",
        action="store_true",
        help="only report whether the index is up to date (exit 1 if not)",
    )
    index.add_argument("--force", action="store_true", help="rebuild even when up to date")
    index.set_defaults(run=cmd_index)

    serve = with_corpus(
        commands.add_parser("serve", help="start the web chat", description=cmd_serve.__doc__)
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    serve.add_argument("--port", type=_count(1, 65535), default=7860)
    serve.add_argument(
        "--auth-file",
        type=Path,
        default=os.environ.get("CTQA_AUTH_FILE") or None,
        help="ask for a login: a file of user:password lines (default $CTQA_AUTH_FILE)",
    )
    serve.add_argument(
        "--queue-size",
        type=_count(1, 10_000),
        default=QUEUE_SIZE,
        help=f"questions that may wait; past that callers are told to retry (default {QUEUE_SIZE})",
    )
    serve.add_argument(
        "--concurrency",
        type=_count(1, 64),
        default=CONCURRENCY,
        help=f"questions answered at once (default {CONCURRENCY})",
    )
    serve.set_defaults(run=cmd_serve)

    ev = commands.add_parser(
        "eval", help="run the eval question sets", description=cmd_eval.__doc__
    )
    ev.add_argument("--set", choices=("statement", "squad", "all"), default="statement")
    ev.add_argument("--limit", type=_count(1, 10**9), help="at most this many questions per file")
    ev.add_argument(
        "--compare",
        action="store_true",
        help="also run dense-only, BM25-only and reciprocal-rank fusion baselines",
    )
    ev.add_argument("--index-root", type=Path, help="where to keep the eval corpora's indexes")
    ev.add_argument("--out", type=Path, default=Path("eval/results"), help="report folder")
    ev.set_defaults(run=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    # A console that cannot show a character (an ASCII or Latin-1 one) gets a "?" for it
    # rather than a traceback (`ask --json` writes \u escapes instead, the same JSON).
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CtqaError as exc:
        print(f"ctqa: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ctqa: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of the output went away (`ctqa ask ... | head -1`)
        # Python flushes stdout again at exit; point it at nothing so that is quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
