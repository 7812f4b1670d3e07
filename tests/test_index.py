"""The index: manifest, load checks, staleness, generations, incremental builds, full and
read-only disks. Real FAISS and BM25 throughout; the fake encoder for exact fast checks, the
bundled model where the vectors themselves matter (marked slow)."""

import errno
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, SEED, SEEDS, FakeEncoder, index_answers, require

from ctqa import Bot
from ctqa.build import build_index, ensure_index
from ctqa.config import MODEL_DIM, MODEL_NAME, MODEL_WEIGHTS_SHA256, PROJECT_ROOT, Settings
from ctqa.errors import CtqaError, IndexDamaged, IndexOutdated, IndexProblem, IndexWriteError
from ctqa.files import file_sha256
from ctqa.manifest import (
    CURRENT,
    FORMAT_VERSION,
    check_status,
    current_generation,
    index_settings,
    manifest_checksum,
)
from ctqa.minilm import token_counter
from ctqa.store import load_index

COUNT = token_counter()
SETTINGS = Settings()
ANSWER_ALL = Settings(abstain_below=0.0, reader="off")  # about the index, not abstention
INDEX_FILES = [
    "documents.json",
    "lexical/data.csc.index.npy",
    "lexical/indices.csc.index.npy",
    "lexical/indptr.csc.index.npy",
    "lexical/params.index.json",
    "lexical/vocab.index.json",
    "passages.faiss",
    "passages.jsonl",
    "units.faiss",
]


class OtherWeights(FakeEncoder):
    """Same name and dimension as the fake encoder, other weights: another model."""

    weights_sha256 = "1" * 64


class Wider(FakeEncoder):
    name = "fake-wider"
    dim = 96


def expected(encoder, settings=SETTINGS):
    return index_settings(settings, encoder.name, encoder.weights_sha256, encoder.dim)


def build(corpus, index_dir, encoder, count=COUNT, settings=SETTINGS):
    return build_index(corpus, index_dir, encoder, settings, count)


def reseal(generation):
    """Recompute every checksum after an edit, as a consistent writer would."""
    manifest = json.loads((generation / "manifest.json").read_text())
    manifest["files"] = {name: file_sha256(generation / name) for name in manifest["files"]}
    manifest["checksum"] = manifest_checksum(manifest)
    (generation / "manifest.json").write_text(json.dumps(manifest, indent=2))


def edit_manifest(generation, change):
    manifest = json.loads((generation / "manifest.json").read_text())
    change(manifest)
    (generation / "manifest.json").write_text(json.dumps(manifest, indent=2))


def visible(index_dir):
    return sorted(p.name for p in index_dir.iterdir() if p.name != ".lock")


# ---- the manifest ------------------------------------------------------------------------------


def test_committed_index_is_fresh_against_seeds_and_settings():
    wanted = index_settings(SETTINGS, MODEL_NAME, MODEL_WEIGHTS_SHA256, MODEL_DIM)
    status = check_status(PROJECT_ROOT / "embeddings", SEEDS, wanted)
    assert status.fresh, f"embeddings/ is {status.state}: {status.reason}; run `ctqa index`"


def test_round_trip_and_manifest(corpus, tmp_path, fake_encoder):
    generation = build(corpus, tmp_path / "ix", fake_encoder)
    index = load_index(tmp_path / "ix", expected(fake_encoder))
    assert index.folder == generation
    assert len(index.documents) == 2
    assert index.passage_vectors.ntotal == len(index.passages) == 10
    assert index.unit_vectors.ntotal == sum(len(p.units) for p in index.passages)
    assert all(p.units[: len(p.sentences)] == p.sentences for p in index.passages)
    manifest = json.loads((generation / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["model"] == {"name": fake_encoder.name, "weights_sha256": "0" * 64, "dim": 64}
    assert manifest["chunking"]["max_passage_tokens"] == SETTINGS.max_passage_tokens
    assert set(manifest["lexical"]) == {"library", "stemmer", "fold"}
    assert manifest["documents"] == [
        {"id": p.stem, "path": p.name, "sha256": file_sha256(p)} for p in sorted(corpus.iterdir())
    ]
    assert manifest["counts"] == {
        "documents": 2,
        "passages": 10,
        "units": index.unit_vectors.ntotal,
    }
    assert sorted(manifest["files"]) == INDEX_FILES
    assert all(file_sha256(generation / n) == sha for n, sha in manifest["files"].items())
    assert manifest["checksum"] == manifest_checksum(manifest)
    for p in index.passages:
        assert index.documents[p.doc_id].text[p.start : p.end] == p.text
    assert check_status(tmp_path / "ix", corpus, expected(fake_encoder)).fresh


def test_copying_an_index_folder_keeps_it_usable(corpus, tmp_path, fake_encoder):
    build(corpus, tmp_path / "ix", fake_encoder)
    shutil.copytree(tmp_path / "ix", tmp_path / "copy")
    assert load_index(tmp_path / "copy", expected(fake_encoder)).passage_vectors.ntotal == 10


# ---- load checks: damage -----------------------------------------------------------------------

DAMAGES = ["truncate", "zero", "empty", "bit-first", "bit-middle", "bit-last", "delete"]


def damage(path, how):
    data = path.read_bytes()
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zero":
        path.write_bytes(bytes(len(data)))
    elif how == "empty":
        path.write_bytes(b"")
    else:
        at = {"bit-first": 0, "bit-middle": len(data) // 2, "bit-last": len(data) - 1}[how]
        path.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :])


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("name", [*INDEX_FILES, "manifest.json"])
def test_every_damaged_file_is_refused_in_one_sentence(corpus, tmp_path, fake_encoder, name, how):
    ix = tmp_path / "ix"
    generation = build(corpus, ix, fake_encoder)
    damage(generation / name, how)
    with pytest.raises(IndexDamaged) as caught:
        load_index(ix, expected(fake_encoder))
    message = str(caught.value)
    assert message.endswith("rebuild with `ctqa index`.") and "\n" not in message
    assert ("missing" in message or "damaged" in message) and generation.name in message
    assert check_status(ix, corpus, expected(fake_encoder)).state == "damaged"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "CURRENT is damaged"),
        (b"\xff\xfe", "CURRENT cannot be read"),
        (b"../elsewhere\n", "CURRENT is damaged"),
        (b"gen-20990101T000000-deadbeef\n", "names generation gen-20990101T000000-deadbeef, which"),
    ],
)
def test_a_damaged_current_pointer_is_refused(corpus, tmp_path, fake_encoder, content, message):
    ix = tmp_path / "ix"
    build(corpus, ix, fake_encoder)
    (ix / CURRENT).write_bytes(content)
    with pytest.raises(IndexDamaged, match=message + r".*rebuild with `ctqa index`\.$"):
        load_index(ix, expected(fake_encoder))
    assert check_status(ix, corpus, expected(fake_encoder)).state == "damaged"


def test_an_edited_manifest_fails_its_own_checksum(corpus, tmp_path, fake_encoder):
    generation = build(corpus, tmp_path / "ix", fake_encoder)
    edit_manifest(generation, lambda m: m.update(corpus="elsewhere"))
    with pytest.raises(IndexDamaged, match=r"manifest .* damaged \(checksum mismatch\)"):
        load_index(tmp_path / "ix", expected(fake_encoder))


def test_a_manifest_without_checksum_from_before_it_existed_still_loads(
    corpus, tmp_path, fake_encoder
):
    generation = build(corpus, tmp_path / "ix", fake_encoder)
    edit_manifest(generation, lambda m: m.pop("checksum"))
    assert load_index(tmp_path / "ix", expected(fake_encoder)).passage_vectors.ntotal == 10


def _drop_last_passage_vector(generation):
    import faiss

    vectors = faiss.read_index(str(generation / "passages.faiss"))
    vectors.remove_ids(faiss.IDSelectorRange(vectors.ntotal - 1, vectors.ntotal))
    faiss.write_index(vectors, str(generation / "passages.faiss"))


def _narrow_units(generation):
    import faiss

    vectors = faiss.read_index(str(generation / "units.faiss"))
    narrow = faiss.IndexFlatIP(32)
    narrow.add(vectors.reconstruct_n(0, vectors.ntotal)[:, :32].copy())
    faiss.write_index(narrow, str(generation / "units.faiss"))


def _l2_units(generation):
    import faiss

    vectors = faiss.read_index(str(generation / "units.faiss"))
    other = faiss.IndexFlatL2(vectors.d)
    other.add(vectors.reconstruct_n(0, vectors.ntotal))
    faiss.write_index(other, str(generation / "units.faiss"))


def _passage_past_the_text(generation):
    path = generation / "passages.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["end"] = 10**6
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _fewer_passages_in_manifest(generation):
    edit_manifest(generation, lambda m: m["counts"].update(passages=9))


@pytest.mark.parametrize(
    "tamper, message",
    [
        (_drop_last_passage_vector, "10 passages, 9 passage vectors, 10 in the manifest"),
        (_fewer_passages_in_manifest, "10 passages, 10 passage vectors, 9 in the manifest"),
        (_narrow_units, "vectors of 64 and 32 dimensions, not 64"),
        (_l2_units, "not a flat or IVF inner-product index"),
        (_passage_past_the_text, "offsets fall outside its statement"),
    ],
)
def test_files_that_disagree_are_refused_even_with_valid_checksums(
    corpus, tmp_path, fake_encoder, tamper, message
):
    generation = build(corpus, tmp_path / "ix", fake_encoder)
    tamper(generation)
    reseal(generation)
    with pytest.raises(IndexDamaged, match=message):
        load_index(tmp_path / "ix", expected(fake_encoder))


# ---- load checks: format and model -------------------------------------------------------------


def test_a_newer_format_is_refused_and_rebuilt_where_the_corpus_is(corpus, tmp_path, fake_encoder):
    ix = tmp_path / "ix"
    generation = build(corpus, ix, fake_encoder)
    edit_manifest(generation, lambda m: m.update(format_version=FORMAT_VERSION + 1))
    reseal(generation)
    with pytest.raises(IndexOutdated, match=r"written by a newer ctqa \(index format 2; this one"):
        load_index(ix, expected(fake_encoder))
    status = check_status(ix, corpus, expected(fake_encoder))
    assert status.state == "stale" and "newer ctqa" in status.reason
    index = ensure_index(corpus, ix, lambda: fake_encoder, SETTINGS, COUNT)
    assert index.manifest["format_version"] == FORMAT_VERSION and index.folder != generation


def test_a_format_that_is_no_number_is_damage(corpus, tmp_path, fake_encoder):
    generation = build(corpus, tmp_path / "ix", fake_encoder)
    edit_manifest(generation, lambda m: m.update(format_version="one"))
    with pytest.raises(IndexDamaged, match="damaged \\(format 'one'\\)"):
        load_index(tmp_path / "ix", expected(fake_encoder))


@pytest.mark.parametrize(
    "other, message",
    [
        (
            OtherWeights(),
            r"model fake-bag-of-words \(weights 000000000000…, 64 dimensions\), "
            r"not fake-bag-of-words \(weights 111111111111…, 64 dimensions\)",
        ),
        (Wider(), r"64 dimensions\), not fake-wider \(weights 000000000000…, 96 dimensions\)"),
    ],
)
def test_another_model_is_refused_naming_both(corpus, tmp_path, fake_encoder, other, message):
    build(corpus, tmp_path / "ix", fake_encoder)
    with pytest.raises(IndexOutdated, match=message + "; rebuild with `ctqa index`"):
        load_index(tmp_path / "ix", expected(other))
    status = check_status(tmp_path / "ix", corpus, expected(other))
    assert status.state == "stale" and "built with the model" in status.reason


def test_another_model_of_the_same_dimension_reembeds_everything(corpus, tmp_path, fake_encoder):
    ix = tmp_path / "ix"
    build(corpus, ix, fake_encoder)
    other = OtherWeights()
    index = ensure_index(corpus, ix, lambda: other, SETTINGS, COUNT)
    assert index.manifest["model"]["weights_sha256"] == "1" * 64
    assert len(other.encoded) == len(index.passages) + index.unit_vectors.ntotal  # no reuse


def test_missing_index_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexProblem, match="no index .* build one with `ctqa index`"):
        load_index(tmp_path / "nothing")


@pytest.mark.parametrize("tamper", ["units.faiss", "manifest.json", CURRENT, "format"])
def test_damage_is_rebuilt_when_the_corpus_is_at_hand(corpus, tmp_path, tamper):
    ix = tmp_path / "ix"
    generation = build(corpus, ix, FakeEncoder())
    before = index_answers(ix)
    if tamper == "format":
        edit_manifest(generation, lambda m: m.update(format_version=99))
        reseal(generation)
    else:
        damage(generation / tamper if tamper != CURRENT else ix / CURRENT, "bit-first")
    logged = []
    bot = Bot(corpus, ix, encoder=FakeEncoder(), settings=ANSWER_ALL, log=logged.append)
    bot.answer("Where was the meeting held?")
    assert logged and logged[0].startswith(f"Indexing {corpus} (")
    assert current_generation(ix) != generation
    assert index_answers(ix) == before


def test_no_padding_label_becomes_a_citation(tmp_path, fake_encoder):
    """FAISS pads results past its size with -1: a one-passage corpus asked for 20."""
    corpus = tmp_path / "one"
    corpus.mkdir()
    (corpus / "one.txt").write_text("The ministers met in Paris.", encoding="utf-8")
    settings = Settings(abstain_below=0, reader="off")
    bot = Bot(corpus, tmp_path / "ix", encoder=fake_encoder, settings=settings)
    answer = bot.answer("Where did the ministers meet?", k=20)
    assert len(answer.citations) == 1
    assert (answer.citations[0].start, answer.citations[0].end) == (0, 27)


# ---- staleness ---------------------------------------------------------------------------------


def test_staleness_is_noticed(corpus, tmp_path, fake_encoder):
    ix = tmp_path / "ix"
    build(corpus, ix, fake_encoder)
    wanted = expected(fake_encoder)
    (corpus / "new.txt").write_text("A new statement.", encoding="utf-8")
    assert check_status(ix, corpus, wanted).reason == "statement added: new.txt"
    build(corpus, ix, fake_encoder)
    (corpus / "new.txt").write_text("An edited statement.", encoding="utf-8")
    assert check_status(ix, corpus, wanted).reason == "statement changed: new.txt"
    (corpus / "new.txt").unlink()
    assert check_status(ix, corpus, wanted).reason == "statement removed: new.txt"
    (corpus / "a.txt").write_text("One.", encoding="utf-8")
    (corpus / "b.txt").write_text("Two.", encoding="utf-8")
    (corpus / "space-cooperation.txt").write_text("Changed.", encoding="utf-8")
    assert check_status(ix, corpus, wanted).reason == (
        "statements added: a.txt, b.txt; statement removed: new.txt; "
        "statement changed: space-cooperation.txt"
    )
    narrower = expected(fake_encoder, Settings(max_passage_tokens=128))
    status = check_status(ix, None, narrower)
    assert status.state == "stale"
    assert status.reason.startswith("it was built with other chunking settings")
    assert '"max_passage_tokens": 256' in status.reason


def test_check_status_changes_nothing(corpus, tmp_path, fake_encoder):
    ix = tmp_path / "ix"
    build(corpus, ix, fake_encoder)
    (corpus / "space-cooperation.txt").write_text("Changed.", encoding="utf-8")
    before = {p: (p.stat().st_mtime_ns, file_sha256(p)) for p in ix.rglob("*") if p.is_file()}
    check_status(ix, corpus, expected(fake_encoder))
    after = {p: (p.stat().st_mtime_ns, file_sha256(p)) for p in ix.rglob("*") if p.is_file()}
    assert after == before


# ---- generations -------------------------------------------------------------------------------


def test_generations_keep_the_current_and_the_previous(corpus, tmp_path, fake_encoder):
    ix = tmp_path / "ix"
    first = build(corpus, ix, fake_encoder)
    second = build(corpus, ix, fake_encoder)
    third = build(corpus, ix, fake_encoder)
    assert current_generation(ix) == third
    assert not first.exists() and second.exists()
    assert visible(ix) == sorted([CURRENT, second.name, third.name])


def test_leftovers_of_interrupted_builds_are_removed(corpus, tmp_path, fake_encoder):
    ix = tmp_path / "ix"
    good = build(corpus, ix, fake_encoder)
    (ix / ".gen-20260101T000000-aaaaaaaa.tmp" / "lexical").mkdir(parents=True)
    (ix / ".gen-20260101T000000-aaaaaaaa.tmp" / "documents.json").write_text("[")
    (ix / f".{CURRENT}.bbbbbbbb.tmp").write_text("gen-x\n")
    shutil.copytree(good, ix / "gen-20260101T000000-cccccccc")  # renamed, never switched to
    assert load_index(ix, expected(fake_encoder)).folder == good  # leftovers are ignored
    new = build(corpus, ix, fake_encoder)
    assert visible(ix) == sorted([CURRENT, good.name, new.name])


def test_a_build_never_removes_what_it_did_not_write(corpus, tmp_path, fake_encoder):
    ix = tmp_path / "ix"
    (ix / "gen-notes").mkdir(parents=True)
    (ix / "gen-notes" / "a.md").write_text("precious")
    (ix / ".gen-mine.tmp").write_text("mine too")
    (ix / f".{CURRENT}.notes.tmp").write_text("and this")
    for _ in range(3):
        build(corpus, ix, fake_encoder)
    assert (ix / "gen-notes" / "a.md").read_text() == "precious"
    assert (ix / ".gen-mine.tmp").read_text() == "mine too"
    assert (ix / f".{CURRENT}.notes.tmp").read_text() == "and this"


def test_a_build_that_finds_the_index_fresh_under_the_lock_writes_nothing(
    corpus, tmp_path, fake_encoder
):
    ix = tmp_path / "ix"
    good = build(corpus, ix, fake_encoder)
    again = build_index(corpus, ix, fake_encoder, SETTINGS, COUNT, only_if_stale=True)
    assert again == good == current_generation(ix)


def test_failed_build_keeps_the_previous_index(corpus, tmp_path, fake_encoder):
    ix = tmp_path / "ix"
    good = build(corpus, ix, fake_encoder)
    (corpus / "broken.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(Exception, match="not UTF-8"):
        build(corpus, ix, fake_encoder)
    assert current_generation(ix) == good
    load_index(ix, expected(fake_encoder))


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("latin1.txt", "caf\xe9\n".encode("latin-1"), "not UTF-8"),
        (
            os.fsdecode(b"x\xff.txt"),
            b"A statement.\n",
            "file name is not UTF-8 .'x\ufffd.txt'.; rename it",
        ),
    ],
)
def test_an_unreadable_statement_leaves_the_previous_index_answering(
    corpus, tmp_path, fake_encoder, name, data, message
):
    ix, said = tmp_path / "ix", []
    good = build(corpus, ix, fake_encoder)
    (corpus / name).write_bytes(data)
    with pytest.raises(CtqaError, match=message):
        build(corpus, ix, fake_encoder)
    index = ensure_index(corpus, ix, lambda: fake_encoder, ANSWER_ALL, COUNT, log=said.append)
    assert index.folder == good
    assert (
        "Answering from the previous index meanwhile" in said[-1] and message.split()[0] in said[-1]
    )
    bot = Bot(corpus=corpus, index=ix, encoder=fake_encoder, settings=ANSWER_ALL, log=said.append)
    assert bot.answer("Who led the French delegation?").citations
    with pytest.raises(CtqaError, match=message):  # no previous index: the cause is told
        ensure_index(corpus, tmp_path / "new", lambda: fake_encoder, ANSWER_ALL, COUNT)


# ---- incremental builds ------------------------------------------------------------------------


class CountingTokens:
    """The real token counter, recording what it counted: only chunking counts tokens."""

    def __init__(self):
        self.texts: list[str] = []

    def __call__(self, text):
        self.texts.append(text)
        return COUNT(text)


def test_only_added_and_changed_statements_are_chunked_and_embedded(corpus, tmp_path):
    ix = tmp_path / "ix"
    build(corpus, ix, FakeEncoder())
    before = load_index(ix, expected(FakeEncoder()))
    seed_rows = [i for i, p in enumerate(before.passages) if p.doc_id == SEED.stem]
    (corpus / "space-cooperation.txt").write_text("The launch moved to 2026.", encoding="utf-8")
    (corpus / "added.txt").write_text("Ministers met in Lyon.", encoding="utf-8")
    shutil.move(corpus / SEED.name, corpus / "renamed.txt")  # same bytes, other name
    encoder, tokens = FakeEncoder(), CountingTokens()
    generation = build(corpus, ix, encoder, count=tokens)
    assert sorted(encoder.encoded) == sorted(
        ["The launch moved to 2026."] * 2 + ["Ministers met in Lyon."] * 2
    )
    assert all(t in ("The launch moved to 2026.", "Ministers met in Lyon.") for t in tokens.texts)
    manifest = json.loads((generation / "manifest.json").read_text())
    assert manifest["build"] == {"embedded": 2, "reused": 1}
    after = load_index(ix, expected(encoder))
    assert {p.doc_id for p in after.passages} == {"added", "renamed", "space-cooperation"}
    fresh = FakeEncoder()
    for i, p in enumerate(after.passages):
        assert after.documents[p.doc_id].text[p.start : p.end] == p.text
        assert after.passage_vectors.reconstruct(i) == pytest.approx(
            fresh.encode([p.text])[0], abs=1e-6
        )
    moved = [p for p in after.passages if p.doc_id == "renamed"]
    assert [(p.start, p.end) for p in moved] == [
        (before.passages[i].start, before.passages[i].end) for i in seed_rows
    ]


def test_a_settings_change_rechunks_everything(corpus, tmp_path):
    ix = tmp_path / "ix"
    build(corpus, ix, FakeEncoder())
    tokens = CountingTokens()
    encoder = FakeEncoder()
    build(corpus, ix, encoder, count=tokens, settings=Settings(max_passage_tokens=200))
    index = load_index(ix, expected(encoder, Settings(max_passage_tokens=200)))
    assert index.manifest["build"] == {"embedded": 2, "reused": 0}
    assert len(encoder.encoded) == len(index.passages) + index.unit_vectors.ntotal


# ---- disk full, read-only ----------------------------------------------------------------------


def _mount_tmpfs(folder, size):
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    require(done.returncode == 0, f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs: room for a small index, not for much else."""
    mount = tmp_path / "disk"
    _mount_tmpfs(mount, "1m")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder, leave: int):
    """Fill the file system of `folder`, then free `leave` bytes."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def test_a_full_disk_at_every_point_of_the_write_fails_clearly(corpus, small_disk, tmp_path):
    """Free space from none to enough, 4 KiB at a time, so the disk fills at each file."""
    changed = tmp_path / "changed"
    shutil.copytree(corpus, changed)
    (changed / "space-cooperation.txt").write_text("The launch moved to 2026.", encoding="utf-8")
    before = None
    outcomes = []
    for leave in range(0, 72 * 1024, 4096):
        ix = small_disk / "ix"
        good = build(corpus, ix, FakeEncoder())
        before = before or index_answers(ix)
        filler = fill(small_disk, leave)
        try:
            build(changed, ix, FakeEncoder())
            outcomes.append("built")
        except IndexWriteError as exc:
            message = str(exc)
            assert "the disk is full (No space left on device); free disk space" in message
            assert message.endswith("the previous index is still in use.")
            assert current_generation(ix) == good and index_answers(ix) == before
            assert visible(ix) == sorted([CURRENT, good.name])  # nothing half-written is left
            outcomes.append("full")
        filler.unlink()
        build(changed, ix, FakeEncoder())  # with space again, the next build succeeds
        assert current_generation(ix) != good
        shutil.rmtree(ix)
    assert outcomes.count("full") >= 10 and outcomes[-1] == "built", outcomes


def test_a_full_disk_leaves_the_bot_answering_from_the_previous_index(corpus, small_disk):
    ix = small_disk / "ix"
    good = build(corpus, ix, FakeEncoder())
    before = index_answers(ix)
    (corpus / "space-cooperation.txt").write_text("The launch moved to 2026.", encoding="utf-8")
    filler = fill(small_disk, 0)
    logged = []
    bot = Bot(corpus, ix, encoder=FakeEncoder(), settings=ANSWER_ALL, log=logged.append)
    assert bot.answer("Who led the Indian delegation?").citations
    assert current_generation(ix) == good and index_answers(ix) == before
    assert "the disk is full" in logged[-1] and "statement changed: space-cooperation" in logged[-1]
    filler.unlink()


def test_a_read_only_file_system_fails_clearly_and_the_previous_index_serves(corpus, tmp_path):
    mount = tmp_path / "ro"
    _mount_tmpfs(mount, "4m")
    try:
        good = build(corpus, mount / "ix", FakeEncoder())
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        (corpus / "space-cooperation.txt").write_text("Changed.", encoding="utf-8")
        with pytest.raises(IndexWriteError, match="the folder is read-only .*; make it writable"):
            build(corpus, mount / "ix", FakeEncoder())
        logged = []
        bot = Bot(
            corpus, mount / "ix", encoder=FakeEncoder(), settings=ANSWER_ALL, log=logged.append
        )
        assert bot.answer("Who led the Indian delegation?").citations
        assert "read-only" in logged[-1] and current_generation(mount / "ix") == good
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_an_immutable_index_folder_fails_clearly(corpus, tmp_path, fake_encoder):
    ix = tmp_path / "ix"
    good = build(corpus, ix, fake_encoder)
    (corpus / "space-cooperation.txt").write_text("Changed.", encoding="utf-8")
    done = subprocess.run(["chattr", "+i", str(ix)], capture_output=True)
    require(done.returncode == 0, f"cannot make a folder immutable: {done.stderr.decode()}")
    try:
        with pytest.raises(IndexWriteError, match="read-only .* previous index is still in use"):
            build(corpus, ix, fake_encoder)
    finally:
        subprocess.run(["chattr", "-i", str(ix)], check=True)
    assert current_generation(ix) == good
    load_index(ix, expected(fake_encoder))


# ---- the real model and the real command -------------------------------------------------------


@pytest.fixture(scope="module")
def real_encoder():
    from ctqa.encoder import load_encoder

    return load_encoder()


@pytest.mark.slow
def test_real_incremental_build_equals_a_full_build(corpus, tmp_path, real_encoder):
    """Reused real vectors are the vectors a full build computes, and the manifest records
    the bundled model's pinned identity."""
    ix, full = tmp_path / "ix", tmp_path / "full"
    build(corpus, ix, real_encoder)
    (corpus / "space-cooperation.txt").write_text("The launch moved to 2026.", encoding="utf-8")
    build(corpus, ix, real_encoder)
    build(corpus, full, real_encoder)
    a, b = load_index(ix, expected(real_encoder)), load_index(full, expected(real_encoder))
    assert a.manifest["build"] == {"embedded": 1, "reused": 1}
    assert a.manifest["model"] == {
        "name": MODEL_NAME,
        "weights_sha256": MODEL_WEIGHTS_SHA256,
        "dim": MODEL_DIM,
    }
    assert a.passages == b.passages
    for left, right in ((a.passage_vectors, b.passage_vectors), (a.unit_vectors, b.unit_vectors)):
        assert left.reconstruct_n(0, left.ntotal) == pytest.approx(
            right.reconstruct_n(0, right.ntotal), abs=1e-5
        )
    assert index_answers(ix, real_encoder) == index_answers(full, real_encoder)
    same_dim = OtherWeights()
    same_dim.name, same_dim.dim = MODEL_NAME, MODEL_DIM
    with pytest.raises(IndexOutdated, match="weights 53aa51172d14…, 384 dimensions\\), not"):
        load_index(ix, expected(same_dim))


def ctqa(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "ctqa", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def snapshot(folder):
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, file_sha256(p) if p.is_file() else "")
        for p in sorted(folder.rglob("*"))
    }


@pytest.mark.slow
def test_index_check_reports_and_exits_non_zero_without_changing_anything(corpus, tmp_path):
    ix = tmp_path / "ix"
    done = ctqa("index", "--corpus", str(corpus), "--index", str(ix))
    assert done.returncode == 0, done.stderr
    where = ["--corpus", str(corpus), "--index", str(ix)]
    fresh = ctqa("index", "--check", *where)
    assert (fresh.returncode, fresh.stdout.strip()) == (0, f"{ix}: fresh")
    (corpus / "space-cooperation.txt").write_text("Changed.", encoding="utf-8")
    (corpus / "added.txt").write_text("Added.", encoding="utf-8")
    (corpus / SEED.name).unlink()
    before = snapshot(ix)
    stale = ctqa("index", "--check", *where)
    assert stale.returncode == 1
    assert stale.stdout.strip() == (
        f"{ix}: stale (statement added: added.txt; statement removed: {SEED.name}; "
        "statement changed: space-cooperation.txt)"
    )
    settings = ctqa("index", "--check", *where, env={"CTQA_MAX_PASSAGE_TOKENS": "128"})
    assert settings.returncode == 1 and "other chunking settings" in settings.stdout
    assert snapshot(ix) == before
    damage(current_generation(ix) / "units.faiss", "bit-middle")
    before = snapshot(ix)
    damaged = ctqa("index", "--check", *where)
    assert damaged.returncode == 1 and f"{ix}: damaged (index file" in damaged.stdout
    assert snapshot(ix) == before
