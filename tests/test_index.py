import json
import os
import shutil

import pytest
from conftest import SEEDS, FakeEncoder, require

from ctqa.config import MODEL_DIM, MODEL_NAME, MODEL_WEIGHTS_SHA256, PROJECT_ROOT, Settings
from ctqa.encoder import token_counter
from ctqa.errors import IndexProblem
from ctqa.index import (
    build_index,
    check_status,
    current_generation,
    index_settings,
    load_index,
)

COUNT = token_counter()
SETTINGS = Settings()


def expected(encoder):
    return index_settings(SETTINGS, encoder.name, encoder.weights_sha256, encoder.dim)


def build(corpus, index_dir, encoder):
    return build_index(corpus, index_dir, encoder, SETTINGS, COUNT)


def test_committed_index_is_fresh_against_seeds_and_settings():
    wanted = index_settings(SETTINGS, MODEL_NAME, MODEL_WEIGHTS_SHA256, MODEL_DIM)
    status = check_status(PROJECT_ROOT / "embeddings", SEEDS, wanted)
    assert status.fresh, f"embeddings/ is {status.state}: {status.reason}; run `ctqa index`"


def test_round_trip(corpus, tmp_path, fake_encoder):
    generation = build(corpus, tmp_path / "ix", fake_encoder)
    index = load_index(tmp_path / "ix", expected(fake_encoder))
    assert index.folder == generation
    assert len(index.documents) == 2
    assert index.passage_vectors.ntotal == len(index.passages) == 10
    assert index.unit_vectors.ntotal == sum(len(p.units) for p in index.passages)
    assert all(p.units[: len(p.sentences)] == p.sentences for p in index.passages)
    manifest = json.loads((generation / "manifest.json").read_text())
    assert manifest["model"] == {"name": fake_encoder.name, "weights_sha256": "0" * 64, "dim": 64}
    assert manifest["counts"] == {
        "documents": 2,
        "passages": 10,
        "units": index.unit_vectors.ntotal,
    }
    assert set(manifest["files"]) >= {
        "documents.json",
        "passages.jsonl",
        "passages.faiss",
        "units.faiss",
        "lexical/params.index.json",
    }
    for p in index.passages:
        assert index.documents[p.doc_id].text[p.start : p.end] == p.text
    assert check_status(tmp_path / "ix", corpus, expected(fake_encoder)).fresh


def test_staleness_is_noticed(corpus, tmp_path, fake_encoder):
    ix = tmp_path / "ix"
    build(corpus, ix, fake_encoder)
    (corpus / "new.txt").write_text("A new statement.", encoding="utf-8")
    assert check_status(ix, corpus, expected(fake_encoder)).reason == "statement added: new.txt"
    build(corpus, ix, fake_encoder)
    (corpus / "new.txt").write_text("An edited statement.", encoding="utf-8")
    assert check_status(ix, corpus, expected(fake_encoder)).reason == "statement changed: new.txt"
    (corpus / "new.txt").unlink()
    assert check_status(ix, corpus, expected(fake_encoder)).reason == "statement removed: new.txt"
    other = dict(expected(fake_encoder), chunking={"max_passage_tokens": 128, "splitter": "x"})
    assert check_status(ix, None, other).state == "stale"


def test_only_changed_statements_are_embedded_again(corpus, tmp_path):
    ix = tmp_path / "ix"
    first = FakeEncoder()
    build(corpus, ix, first)
    assert any("Bengaluru" in t for t in first.encoded)
    (corpus / "space-cooperation.txt").write_text("The launch moved to 2026.", encoding="utf-8")
    second = FakeEncoder()
    build(corpus, ix, second)
    assert second.encoded == ["The launch moved to 2026.", "The launch moved to 2026."]
    index = load_index(ix, expected(second))
    fresh = FakeEncoder().encode([index.passages[0].text])
    assert index.passage_vectors.reconstruct(0) == pytest.approx(fresh[0], abs=1e-6)


def test_a_new_generation_replaces_the_old(corpus, tmp_path, fake_encoder):
    ix = tmp_path / "ix"
    old = build(corpus, ix, fake_encoder)
    new = build_index(corpus, ix, fake_encoder, SETTINGS, COUNT)
    assert current_generation(ix) == new != old
    assert not old.exists()
    assert sorted(p.name for p in ix.iterdir() if not p.name.startswith(".")) == sorted(
        ["CURRENT", new.name]
    )


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
@pytest.mark.parametrize(
    "name",
    [
        "passages.faiss",
        "units.faiss",
        "passages.jsonl",
        "documents.json",
        "lexical/data.csc.index.npy",
    ],
)
def test_damaged_files_are_refused_clearly(corpus, tmp_path, fake_encoder, name, damage):
    generation = build(corpus, tmp_path / "ix", fake_encoder)
    path = generation / name
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        path.write_bytes(data[:10] + bytes([data[10] ^ 0xFF]) + data[11:])
    else:
        path.unlink()
    with pytest.raises(IndexProblem, match=r"(damaged|missing).*rebuild with `ctqa index`"):
        load_index(tmp_path / "ix", expected(fake_encoder))
    assert check_status(tmp_path / "ix", corpus, expected(fake_encoder)).state == "damaged"


def test_another_model_is_refused(corpus, tmp_path, fake_encoder):
    build(corpus, tmp_path / "ix", fake_encoder)
    other = dict(
        expected(fake_encoder), model={"name": "other", "weights_sha256": "1" * 64, "dim": 64}
    )
    with pytest.raises(IndexProblem, match="other model settings"):
        load_index(tmp_path / "ix", other)


def test_missing_index_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexProblem, match="no index .* build one with `ctqa index`"):
        load_index(tmp_path / "nothing")


def test_failed_build_keeps_the_previous_index(corpus, tmp_path, fake_encoder):
    ix = tmp_path / "ix"
    good = build(corpus, ix, fake_encoder)
    (corpus / "broken.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(Exception, match="not UTF-8"):
        build(corpus, ix, fake_encoder)
    assert current_generation(ix) == good
    load_index(ix, expected(fake_encoder))


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs: room for a small index, not for much else."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True
    )
    require(done.returncode == 0, f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_clearly_and_keeps_the_previous_index(corpus, small_disk, fake_encoder):
    ix = small_disk / "ix"
    good = build(corpus, ix, fake_encoder)
    (corpus / "space-cooperation.txt").write_text("Changed.", encoding="utf-8")
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    with pytest.raises(IndexProblem, match="free disk space .* previous index is still in use"):
        build(corpus, ix, fake_encoder)
    assert current_generation(ix) == good
    assert load_index(ix, expected(fake_encoder)).passage_vectors.ntotal == 10
    filler.unlink()
    build(corpus, ix, fake_encoder)  # and the next build succeeds
    assert current_generation(ix) != good


def test_a_read_only_index_folder_fails_clearly(corpus, tmp_path, fake_encoder):
    import subprocess

    ix = tmp_path / "ix"
    good = build(corpus, ix, fake_encoder)
    (corpus / "space-cooperation.txt").write_text("Changed.", encoding="utf-8")
    done = subprocess.run(["chattr", "+i", str(ix)], capture_output=True)
    require(done.returncode == 0, f"cannot make a folder immutable: {done.stderr.decode()}")
    try:
        with pytest.raises(IndexProblem, match="previous index is still in use"):
            build(corpus, ix, fake_encoder)
    finally:
        subprocess.run(["chattr", "-i", str(ix)], check=True)
    assert current_generation(ix) == good
    load_index(ix, expected(fake_encoder))


def test_copying_an_index_folder_keeps_it_usable(corpus, tmp_path, fake_encoder):
    build(corpus, tmp_path / "ix", fake_encoder)
    shutil.copytree(tmp_path / "ix", tmp_path / "copy")
    assert load_index(tmp_path / "copy", expected(fake_encoder)).passage_vectors.ntotal == 10
