"""Choose the follow-up rule (`Settings.follow_*`, see conversation.py) on tuning data only.

Tuning data, never reported:
- the "tuning" half of `eval/statement/conversations.jsonl`: each turn after the first is a
  follow-up (it leans) or a topic switch (it does not);
- `eval/statement-tuning/questions.jsonl`, each question asked after 3 unrelated tuning
  questions (on another paragraph): none of these lean.

The three measures (`lean`, `gap`, `lift`) of every such turn are fitted by a logistic
regression, each class weighing the same. The bias is then moved along a grid and the one kept
that answers the most tuning follow-ups right while at least 0.97 of the paired tuning
questions keep the first passage they get alone (ties: the one that keeps more).

    .venv/bin/python eval/tune_followups.py        # prints the figures and the chosen rule
    .venv/bin/python eval/tune_followups.py --at 5.07 21.68 0 -0.55   # also another rule's figures
"""

from __future__ import annotations

import argparse

import numpy as np

from ctqa.bot import Bot
from ctqa.config import PROJECT_ROOT, Settings
from ctqa.conversation import FollowUpRule, Step, next_step
from ctqa.conversation_eval import (
    better_of,
    kept_share,
    load_turns,
    pairings,
    score_conversations,
)
from ctqa.evaluate import load_questions
from ctqa.logistic import fit_logistic

CONVERSATIONS = PROJECT_ROOT / "eval" / "statement" / "conversations.jsonl"
TUNING_QUESTIONS = PROJECT_ROOT / "eval" / "statement-tuning" / "questions.jsonl"
EARLIER_PER_QUESTION = 3
KEEP_AT_LEAST = 0.97
NEVER = FollowUpRule(lean=0.0, gap=0.0, lift=0.0, bias=-1.0)  # measures the evidence, never leans


def tuning_pairs() -> list[tuple[str, object]]:
    """Each tuning question after `EARLIER_PER_QUESTION` answerable tuning questions answered
    by another paragraph (`conversation_eval.pairings`, as `ctqa eval` pairs its own)."""
    return pairings(load_questions(TUNING_QUESTIONS), earlier=EARLIER_PER_QUESTION)


def evidence(bot: Bot, earlier: str, question: str) -> tuple[float, float, float]:
    """(lean, gap, lift) of `question` after `earlier` (searched alone)."""
    retriever = bot.load()

    def search(text):
        return retriever.search(text, 5)

    before = Step(earlier, earlier, search(earlier), (earlier,))
    step = next_step(question, before, search, NEVER)
    return step.lean or 0.0, step.gap or 0.0, step.lift or 0.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--at",
        nargs=4,
        type=float,
        action="append",
        default=[],
        metavar=("LEAN", "GAP", "LIFT", "BIAS"),
        help="also print the figures of this rule (repeatable)",
    )
    at = parser.parse_args(argv).at
    bot = Bot()
    turns = [t for t in load_turns(CONVERSATIONS, half="tuning") if t.question.history]
    pairs = tuning_pairs()
    rows, labels = [], []
    for t in turns:
        rows.append(evidence(bot, t.question.history[-1], t.question.question))
        labels.append(t.part != "switch")
    for earlier, q in pairs:
        rows.append(evidence(bot, earlier, q.question))
        labels.append(False)
    x, y = np.array(rows), np.array(labels, dtype=float)
    weights = np.where(y == 1, len(y) / (2 * y.sum()), len(y) / (2 * (len(y) - y.sum())))
    lean, gap, lift, bias = fit_logistic(x, y, weights)
    print(
        f"fit on {len(turns)} tuning turns and {len(pairs)} tuning pairs: "
        f"lean {lean:.3f}, gap {-gap:.3f}, lift {lift:.3f}, bias {bias:.3f}"
    )
    every = load_turns(CONVERSATIONS, half="tuning")
    ways = [score_conversations(bot, every, mode) for mode in ("alone", "glued")]
    ways.append(better_of(*ways))
    print(
        "tuning follow-ups, "
        + ", ".join(f"{w.mode} {w.shares['follow-up'][0]:.3f}" for w in ways)
        + " (either: the best any choice between alone and glued reaches)"
    )
    results = []
    for shift in np.arange(-2.0, 3.01, 0.25):
        rule = dict(
            follow_lean=round(float(lean), 2),
            follow_gap=round(float(-gap), 2),
            follow_lift=round(float(lift), 2),
            follow_bias=round(float(bias - shift), 2),
        )
        follow, kept = figures(bot, rule, every, pairs, f"bias {rule['follow_bias']:+.2f}")
        results.append((follow, kept, rule))
    allowed = [r for r in results if r[1] >= KEEP_AT_LEAST] or results
    follow, kept, rule = max(allowed, key=lambda r: (r[0], r[1]))
    print(f"chosen: {rule} (tuning follow-ups {follow:.3f}, kept {kept:.3f})")
    for other in at:
        names = ("follow_lean", "follow_gap", "follow_lift", "follow_bias")
        rule = dict(zip(names, other, strict=True))
        figures(bot, rule, every, pairs, "at lean {}, gap {}, lift {}, bias {}".format(*other))


def figures(bot: Bot, rule: dict, turns, pairs, label: str) -> tuple[float, float]:
    """Print and return (tuning follow-ups right, pairs kept) under `rule` (Settings fields)."""
    tuned = Bot(settings=Settings.from_env(**rule), encoder=bot.load().encoder)
    scores = score_conversations(tuned, turns, "shipped").shares
    kept, _ = kept_share(tuned, pairs)
    follow, n = scores["follow-up"]
    switch, _ = scores["switch"]
    print(
        f"  {label}: follow-ups {follow:.3f} ({n}), switches {switch:.3f}, kept after an "
        f"unrelated question {kept:.3f}"
    )
    return follow, kept


if __name__ == "__main__":
    main()
