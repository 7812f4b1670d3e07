"""`make model`: train the reader from the bundled MiniLM on SQuAD 2.0, export it, calibrate it.

    python -m ctqa.train                 # the shipped recipe, into src/ctqa/models/
    python -m ctqa.train --limit 40 --steps 6 --out /tmp/reader   # a few steps on a slice
    python -m ctqa.train --answer-removed --work /tmp/w --out /tmp/r   # a recipe tried, not shipped

Stages, each kept in the work folder (`--work`, default ~/.cache/ctqa/train) so that a stopped
run resumes where it was: indexes of the training and tuning articles, the (question, passage)
pairs, checkpoints every `checkpoint_every` steps. Then the ONNX export (`reader_export.py`) and
the calibration on the tuning split (`calibrate.py`), which the record and model card report.

Why it fits an hour on two cores: the embeddings and the first `frozen_layers` layers are frozen,
so their outputs are computed once per pair (kept in bfloat16) and only the upper layers are
trained. It computes in bfloat16 where the CPU has bfloat16 instructions, float32 elsewhere
(`precision.py`).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .precision import PRECISIONS, UNRECORDED, autocast, chosen_precision, recorded_precision
from .reader import MODEL_FOLDER, pair_tokenizer
from .training_data import (
    DEFAULT_WORK,
    SQUAD_TRAIN,
    Pair,
    articles_bot,
    batches,
    encode_pairs,
    load_squad,
    split,
    swapped_pairs,
    training_pairs,
)


@dataclass(frozen=True)
class TrainConfig:
    """The recipe. `make model` runs these defaults."""

    seed: int = 13
    negatives: int = 3  # retrieved passages without an answer, per question
    candidates: int = 8  # retrieved passages the negatives are taken from
    answer_removed: bool = False  # also read each own passage without its answer's sentences
    swapped_names: bool = False  # also read each answering passage with a name swapped out
    max_tokens: int = 256  # question and passage word pieces while training
    frozen_layers: int = 2
    epochs: float = 1.75
    steps: int | None = None  # overrides epochs (the fast test)
    batch_size: int = 32
    learning_rate: float = 8e-5
    warmup: float = 0.06
    span_weight: float = 0.5
    checkpoint_every: int = 100
    limit: int | None = None  # questions per part, for a quick run
    threads: int = 2
    precision: str = "auto"  # "bfloat16", "float32", or "auto": what the CPU computes fast


@dataclass
class Batch:
    ids: object  # torch tensors
    types: object
    mask: object
    label: object
    start: object
    end: object


def collate(rows: list[int], encoded, targets, cache=None):
    """A padded batch of pairs `rows`, and their cached lower-layer states when `cache`."""
    import torch

    width = max(len(encoded[i].ids) for i in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for r, i in enumerate(rows):
        n = len(encoded[i].ids)
        ids[r, :n] = torch.tensor(encoded[i].ids)
        types[r, :n] = torch.tensor(encoded[i].type_ids)
        mask[r, :n] = 1
    t = torch.from_numpy(targets[rows])
    batch = Batch(ids, types, mask, t[:, 0].float(), t[:, 1], t[:, 2])
    if cache is None:
        return batch, None
    states, starts = cache
    hidden = torch.zeros((len(rows), width, states.shape[1]), dtype=states.dtype)
    for r, i in enumerate(rows):
        n = len(encoded[i].ids)
        hidden[r, :n] = states[starts[i] : starts[i] + n]
    return batch, hidden


def lower_cache(net, encoded, layers: int, precision: str, size: int = 64):
    """Every pair's hidden states after the frozen layers, kept in bfloat16: one array of all
    their pieces, one after another (no padding), and where each pair's begin."""
    import torch

    lengths = np.array([len(e.ids) for e in encoded])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    states = torch.empty((int(lengths.sum()), net.shape.dim), dtype=torch.bfloat16)
    order = np.argsort(lengths, kind="stable").tolist()
    no_targets = np.zeros((len(encoded), 3), dtype=np.int64)
    net.eval()
    with torch.no_grad(), autocast(precision):
        for at in range(0, len(order), size):
            rows = order[at : at + size]
            batch, _ = collate(rows, encoded, no_targets)
            hidden = net.lower(batch.ids, batch.mask, batch.types, layers)
            for r, i in enumerate(rows):
                states[starts[i] : starts[i] + lengths[i]] = hidden[r, : lengths[i]]
    return states, starts


def loss_of(net, batch: Batch, hidden, config: TrainConfig):
    """Answering (each passage on its own) and span losses."""
    from torch.nn import functional as F

    with autocast(config.precision):
        if hidden is None:
            logit, start, end = net(batch.ids, batch.mask, batch.types)
        else:
            if config.precision != "bfloat16":
                hidden = hidden.float()  # the cache keeps bfloat16
            logit, start, end = net.upper(hidden, batch.mask, config.frozen_layers)
    answer = F.binary_cross_entropy_with_logits(logit.float(), batch.label)
    span = F.cross_entropy(start.float(), batch.start) + F.cross_entropy(end.float(), batch.end)
    return answer + config.span_weight * span / 2


def same_recipe(saved: dict, config: TrainConfig) -> bool:
    """Whether a checkpoint's recipe (`asdict` of its `TrainConfig`) is `config`. A field added
    to `TrainConfig` after the checkpoint was written counts at its default, the value that
    keeps the recipe as it was, so adding one does not throw a run away; `precision` counts as
    what every run before it was trained in (`UNRECORDED`).

    >>> same_recipe({k: v for k, v in asdict(TrainConfig()).items() if k != "seed"}, TrainConfig())
    True
    >>> same_recipe(asdict(TrainConfig()), TrainConfig(seed=14))
    False
    """
    return {**asdict(TrainConfig()), "precision": UNRECORDED, **saved} == asdict(config)


def settle_precision(config: TrainConfig, saved: dict | None, total: int) -> TrainConfig:
    """`config` with an "auto" precision settled. A finished checkpoint (`saved`, `total` steps)
    of the same recipe keeps the precision it was trained in: nothing is left to compute, so a
    run that only redoes the export and calibration does not train again on a CPU that would
    choose the other. Otherwise, what the CPU computes fast (`chosen_precision`)."""
    if config.precision == "auto" and saved is not None:
        kept = replace(config, precision=recorded_precision(saved["config"]))
        if saved["step"] >= total and same_recipe(saved["config"], kept):
            return kept
    return replace(config, precision=chosen_precision(config.precision))


@dataclass(frozen=True)
class TrainedNet:
    """What `train_net` did: each step's loss, the seconds it trained (summed over resumed
    runs), and the recipe with its precision settled."""

    losses: list[float]
    seconds: float
    config: TrainConfig


def train_net(net, encoded, targets, config: TrainConfig, work: Path, log=print) -> TrainedNet:
    """Train `net` in place, resuming from `work/checkpoint.pt` when it is there."""
    import torch

    per_epoch = math.ceil(len(encoded) / config.batch_size)
    total = config.steps or max(1, round(config.epochs * per_epoch))
    checkpoint = work / "checkpoint.pt"
    saved = torch.load(checkpoint, weights_only=False) if checkpoint.is_file() else None
    config = settle_precision(config, saved, total)
    log(f"training in {config.precision} ({torch.cpu.get_capabilities().get('cpu_name')})")
    torch.manual_seed(config.seed)
    for p in net.layers[: config.frozen_layers].parameters():
        p.requires_grad = False
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.01)
    warm = max(1, round(config.warmup * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    step, losses, seconds = 0, [], 0.0
    if saved is not None:
        if not same_recipe(saved["config"], config):
            log(f"{checkpoint} was written by another recipe: training from the start")
        else:
            net.load_state_dict(saved["net"])
            optimizer.load_state_dict(saved["optimizer"])
            schedule.load_state_dict(saved["schedule"])
            step, losses = saved["step"], saved["losses"]
            seconds = saved.get("seconds", 0.0)
            torch.set_rng_state(saved["rng"])  # dropout draws as if never stopped
            log(f"resuming at step {step} of {total}")
    cache = None
    if config.frozen_layers and step < total:
        started = time.perf_counter()
        cache = lower_cache(net, encoded, config.frozen_layers, config.precision)
        took = time.perf_counter() - started
        log(f"frozen layers' outputs for {len(encoded)} pairs in {took:.0f} s")
    epoch_plans: dict[int, list] = {}
    started = time.perf_counter()
    while step < total:
        epoch, at = divmod(step, per_epoch)
        if epoch not in epoch_plans:  # the same order on resume: seeded by the epoch
            plan = batches(encoded, config.batch_size, random.Random(config.seed + epoch))
            epoch_plans = {epoch: plan}
        rows = epoch_plans[epoch][at]
        net.train()
        net.layers[: config.frozen_layers].eval()
        batch, hidden = collate(rows, encoded, targets, cache)
        loss = loss_of(net, batch, hidden, config)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        step += 1
        if step % 20 == 0 or step == total:
            rate = (seconds + time.perf_counter() - started) / 60
            log(f"step {step}/{total} loss {np.mean(losses[-20:]):.4f} ({rate:.1f} min)")
        if step % config.checkpoint_every == 0 or step == total:
            state = {
                "net": net.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "step": step,
                "losses": losses,
                "config": asdict(config),
                "rng": torch.get_rng_state(),
                "seconds": seconds + time.perf_counter() - started,
            }
            torch.save(state, work / "checkpoint.tmp")
            (work / "checkpoint.tmp").replace(checkpoint)
    return TrainedNet(losses, seconds + time.perf_counter() - started, config)


def prepare_pairs(config: TrainConfig, work: Path, log=print) -> tuple[list[Pair], dict]:
    """The training pairs, and the questions by part; with `swapped_names`, the swapped
    questions follow the retrieved pairs (`training_data.swapped_pairs`)."""
    pairs, parts = retrieved_pairs(config, work, log)
    if config.swapped_names:
        swapped = swapped_pairs(pairs, parts["train"], SQUAD_TRAIN / "corpus", config.seed)
        log(f"{len(swapped)} questions with a name or number swapped")
        pairs = pairs + swapped
        random.Random(config.seed).shuffle(pairs)
    return pairs, parts


def retrieved_pairs(config: TrainConfig, work: Path, log=print) -> tuple[list[Pair], dict]:
    """The pairs of each question and what retrieval proposes (kept in `work/pairs-*.jsonl`),
    and the questions by part."""
    parts = split(load_squad(SQUAD_TRAIN / "questions.jsonl"))
    if config.limit:
        parts = {k: v[: config.limit] for k, v in parts.items()}
    kinds = f"{config.limit or 'all'}-{config.negatives}-{config.candidates}"
    saved = work / f"pairs-{kinds}{'-removed' if config.answer_removed else ''}.jsonl"
    if saved.is_file():
        pairs = [
            Pair(**{**row, "span": tuple(row["span"]) if row["span"] else None})
            for row in map(json.loads, saved.read_text(encoding="utf-8").splitlines())
        ]
        return pairs, parts
    bot = articles_bot(parts["train"], "train", work, log)
    started = time.perf_counter()
    pairs = training_pairs(
        parts["train"], bot, config.negatives, config.candidates, config.seed, config.answer_removed
    )
    took = time.perf_counter() - started
    log(f"{len(pairs)} pairs from {len(parts['train'])} questions in {took:.0f} s")
    lines = (json.dumps(asdict(p), ensure_ascii=False) for p in pairs)
    (work / "pairs.tmp").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (work / "pairs.tmp").replace(saved)
    return pairs, parts


def run(config: TrainConfig, work: Path, out: Path, log=print) -> dict:
    """The whole recipe; returns the record written beside the model in `out`."""
    import torch

    from .calibrate import calibrate
    from .config import passive_openmp
    from .minilm import model_dir, verified_weights
    from .reader_export import export_reader
    from .reader_net import from_minilm

    passive_openmp()
    torch.set_num_threads(config.threads)
    began = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    pairs, parts = prepare_pairs(config, work, log)
    encoded, targets = encode_pairs(pair_tokenizer(max_tokens=config.max_tokens), pairs)
    log(
        f"{len(encoded)} pairs encoded ({int(targets[:, 0].sum())} answer), "
        f"mean {np.mean([len(e.ids) for e in encoded]):.0f} word pieces"
    )
    net = from_minilm(verified_weights(model_dir()), seed=config.seed)
    trained = train_net(net, encoded, targets, config, work, log)
    config, losses = trained.config, trained.losses
    out.mkdir(parents=True, exist_ok=True)
    export = export_reader(net, out, work, config.threads, log)
    calibration, figures = calibrate(out, export, parts, work, config, log)
    record = {
        "format": 1,
        "file": export["file"],
        "sha256": export["sha256"],
        "calibration": asdict(calibration),
        "training": {
            "config": asdict(config),
            "questions": len(parts["train"]),
            "articles": len({q.file for q in parts["train"]}),
            "pairs": len(encoded),
            "answer_pairs": int(targets[:, 0].sum()),
            "steps": len(losses),
            "first_loss": round(float(np.mean(losses[:20])), 4),
            "last_loss": round(float(np.mean(losses[-20:])), 4),
            "train_minutes": round(trained.seconds / 60, 1),
            "total_minutes": round((time.perf_counter() - began) / 60, 1),
            "torch": torch.__version__,
        },
        "export": {k: v for k, v in export.items() if k not in ("file", "sha256")},
        "tuning": figures,
    }
    (out / "reader.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    from .model_card import write_card

    write_card(out, record)
    log(
        f"make model: {record['training']['total_minutes']} min in all "
        f"({record['training']['train_minutes']} min training); wrote {out}"
    )
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ctqa.train", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=MODEL_FOLDER, help="where the model goes")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    for name in ("steps", "limit", "frozen_layers", "seed", "threads", "batch_size"):
        parser.add_argument("--" + name.replace("_", "-"), type=int)
    for name in ("epochs", "learning_rate"):
        parser.add_argument("--" + name.replace("_", "-"), type=float)
    parser.add_argument("--precision", choices=PRECISIONS, help="default: auto")
    parser.add_argument(
        "--answer-removed",
        action="store_true",
        default=None,
        help="also train on each own passage without its answer's sentences (not shipped)",
    )
    parser.add_argument(
        "--swapped-names",
        action="store_true",
        default=None,
        help="also train on each answerable question with a name or number of its passage "
        "swapped for another of its article, as a no-answer pair",
    )
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k not in ("out", "work") and v is not None}
    config = replace(TrainConfig(), **overrides)
    run(config, args.work, args.out, log=lambda m: print(m, file=sys.stderr, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
