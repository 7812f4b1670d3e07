"""`make model`'s parts on a tiny slice: a few steps lower the loss, a stopped run resumes, and
the export loads and reads."""

import numpy as np
import pytest

from ctqa.reader import Reader, open_session, pair_tokenizer
from ctqa.training_data import SQUAD_TRAIN, encode_pairs, load_squad, pairs_for, split

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slice_pairs():
    """Pairs of 12 training questions: their paragraph, and one other as a negative."""
    questions = split(load_squad(SQUAD_TRAIN / "questions.jsonl"))["train"][:12]
    article = (SQUAD_TRAIN / "corpus" / questions[0].file).read_text(encoding="utf-8")
    paragraphs = article.split("\n\n")
    pairs = []
    for q in questions:
        others = [p for i, p in enumerate(paragraphs[:12]) if i != q.paragraph]
        own = paragraphs[q.paragraph]
        pairs += pairs_for(q, [(own, [own])], others, negatives=1)
    return pairs


def tiny_config(**changes):
    from ctqa.train import TrainConfig

    settings = dict(steps=12, batch_size=8, frozen_layers=4, learning_rate=3e-4, warmup=0.1)
    return TrainConfig(**{**settings, "checkpoint_every": 4, **changes})


def fresh_net():
    from ctqa.minilm import model_dir, verified_weights
    from ctqa.reader_net import from_minilm

    return from_minilm(verified_weights(model_dir()), seed=13)


def stop_at_step_six(monkeypatch, encoded, targets, config, folder):
    """Train until the sixth step's loss, stopped there as by Ctrl-C: the checkpoint of step 4
    (`tiny_config` writes one every 4 steps) is what remains."""
    import ctqa.train as train

    real_loss, calls = train.loss_of, {"n": 0}

    def stops_at_step_six(*args):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real_loss(*args)

    monkeypatch.setattr(train, "loss_of", stops_at_step_six)
    with pytest.raises(KeyboardInterrupt):
        train.train_net(fresh_net(), encoded, targets, config, folder, log=lambda m: None)
    monkeypatch.setattr(train, "loss_of", real_loss)


def test_a_few_steps_lower_the_loss_and_the_export_reads(slice_pairs, tmp_path):
    from ctqa.reader_export import SHARED, export_reader, ship_float32
    from ctqa.train import train_net

    encoded, targets = encode_pairs(pair_tokenizer(max_tokens=128), slice_pairs)
    assert targets[:, 0].sum() >= 8  # the answering pairs kept their spans
    net = fresh_net()
    losses = train_net(net, encoded, targets, tiny_config(), tmp_path, log=lambda m: None).losses
    assert len(losses) == 12
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
    export = export_reader(net, tmp_path / "out", tmp_path, threads=2, log=lambda m: None)
    assert export["float32_difference"] < 1e-3
    session = open_session(tmp_path / "out" / export["file"], 2)
    passage = slice_pairs[0].passage
    reading = Reader(session, pair_tokenizer()).read(slice_pairs[0].question, [passage])
    assert np.isfinite(reading[0].logit)
    assert 0 <= reading[0].span[0] < reading[0].span[1] <= len(passage)
    # float32 ships without MiniLM's word embeddings, put back on load: the same readings
    shipped = ship_float32(tmp_path / "out", dict(export))
    assert shipped["shipped_bytes"] < 0.6 * export["float32_bytes"]
    full = Reader(open_session(export["float32_file"], 2), pair_tokenizer())
    lean = Reader(open_session(tmp_path / "out" / "reader.onnx", 2, SHARED), pair_tokenizer())
    question = slice_pairs[0].question
    assert lean.read(question, [passage]) == full.read(question, [passage])


def test_a_stopped_run_resumes_from_its_checkpoint(slice_pairs, tmp_path, monkeypatch):
    import ctqa.train as train

    encoded, targets = encode_pairs(pair_tokenizer(max_tokens=128), slice_pairs)
    config = tiny_config(steps=8)
    stop_at_step_six(monkeypatch, encoded, targets, config, tmp_path)
    # a checkpoint written before a TrainConfig field existed resumes: the field at its default
    import torch

    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    del saved["config"]["answer_removed"]
    torch.save(saved, tmp_path / "checkpoint.pt")
    said = []
    losses = train.train_net(
        fresh_net(), encoded, targets, config, tmp_path, log=said.append
    ).losses
    assert "resuming at step 4 of 8" in said
    assert len(losses) == 8
    # another recipe's checkpoint is not resumed, and the log says why
    said = []
    other = tiny_config(steps=8, seed=14)
    losses = train.train_net(fresh_net(), encoded, targets, other, tmp_path, log=said.append).losses
    assert any("another recipe" in line for line in said) and len(losses) == 8


def test_the_network_gives_minilm_s_own_hidden_states():
    import torch
    from transformers import AutoModel

    from ctqa.minilm import model_dir
    from ctqa.reader import batch_arrays, encode_pair

    net = fresh_net().eval()
    tokenizer = pair_tokenizer()
    feed = batch_arrays([encode_pair(tokenizer, "Who led?", "Mahaveer Singhvi led it.")])
    ids, mask, types = (
        torch.from_numpy(feed[k]) for k in ("input_ids", "attention_mask", "token_type_ids")
    )
    bert = AutoModel.from_pretrained(str(model_dir()), local_files_only=True).eval()
    with torch.no_grad():
        ours = net.lower(ids, mask, types, net.shape.layers)
        theirs = bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_the_model_card_says_what_the_reader_was_trained_on():
    import json

    from ctqa.model_card import card_text
    from ctqa.reader import MODEL_FOLDER

    record = json.loads((MODEL_FOLDER / "reader.json").read_text(encoding="utf-8"))
    assert card_text(record) == (MODEL_FOLDER / "READER.md").read_text(encoding="utf-8")
    assert "the other 14 articles' questions" in card_text(record)
    record["training"].update(questions=3260, articles=7)
    record["training"]["config"].update(swapped_names=True)
    card = card_text(record)
    assert "3260 questions of 7 of the other 14 articles" in card
    assert "name or number of its passage swapped" in card


def test_the_precision_is_bfloat16_only_where_the_cpu_has_bfloat16_instructions(monkeypatch):
    import torch

    from ctqa.precision import chosen_precision

    assert chosen_precision("float32") == "float32"
    assert chosen_precision("bfloat16") == "bfloat16"
    with pytest.raises(ValueError, match="precision must be one of"):
        chosen_precision("float16")
    # without them PyTorch's bfloat16 matrix products are tens of times slower (AVX2 only)
    plain = {"avx2": True, "avx512_bf16": False, "amx_bf16": False}
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: plain)
    assert chosen_precision("auto") == "float32"
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {**plain, "amx_bf16": True})
    assert chosen_precision("auto") == "bfloat16"
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {**plain, "avx512_bf16": True})
    assert chosen_precision("auto") == "bfloat16"


def test_a_finished_run_of_the_other_precision_is_not_trained_again(
    slice_pairs, tmp_path, monkeypatch
):
    """An "auto" run on a CPU without bfloat16 instructions keeps a finished bfloat16
    checkpoint (one from before `precision` was recorded), where only the export and the
    calibration are left; an unfinished one is trained again, in float32."""
    import torch

    import ctqa.train as train

    plain = {"avx2": True, "avx512_bf16": False, "amx_bf16": False}
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: plain)
    encoded, targets = encode_pairs(pair_tokenizer(max_tokens=128), slice_pairs)
    config = tiny_config(steps=8)

    def as_if_bfloat16(folder):
        saved = torch.load(folder / "checkpoint.pt", weights_only=False)
        assert saved["config"]["precision"] == "float32"
        del saved["config"]["precision"]  # as written before the field: trained in bfloat16
        torch.save(saved, folder / "checkpoint.pt")

    def trained(folder):
        said = []
        done = train.train_net(fresh_net(), encoded, targets, config, folder, log=said.append)
        assert len(done.losses) == 8
        return said, done.config.precision  # the precision the record states

    finished, stopped = tmp_path / "finished", tmp_path / "stopped"
    finished.mkdir()
    stopped.mkdir()
    trained(finished)
    as_if_bfloat16(finished)
    said, precision = trained(finished)
    assert "resuming at step 8 of 8" in said and precision == "bfloat16"

    stop_at_step_six(monkeypatch, encoded, targets, config, stopped)
    as_if_bfloat16(stopped)
    said, precision = trained(stopped)
    assert any("another recipe" in line for line in said) and precision == "float32"
