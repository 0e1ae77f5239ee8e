"""Ray Data on a real local cluster (2 CPUs), real MiniLM and a real `chroma run` server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import ray
import ray.data
from typer.testing import CliRunner, Result

from tests.conftest import SCIFACT
from youtu_rag import MINILM, YoutuEmbedder
from youtu_rag.cli import app
from youtu_rag.index.lexical import LexicalIndex, lexical_directory
from youtu_rag.index.store import connect, open_records
from youtu_rag.ingest.distributed import cpus_per_actor, embed_dataset, index_with_ray
from youtu_rag.ingest.pipeline import find_files, make_chunker, plan_file
from youtu_rag.model import loading

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DOCS = REPO / "examples" / "sample_docs"
# Short chunks, so that every generated file has several.
CHUNKING = ["--chunk-size", "40", "--chunk-overlap", "0"]
SCIFACT_TASK = "Given a scientific claim, retrieve documents that support or refute the claim"
runner = CliRunner()


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """A local Ray cluster with 2 CPUs and a small object store, for the whole session."""
    ray.init(
        num_cpus=2,
        object_store_memory=200 * 1024**2,
        include_dashboard=False,
        log_to_driver=False,
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def scifact_texts(name: str, count: int) -> list[str]:
    with (SCIFACT / name).open(encoding="utf-8") as lines:
        return [json.loads(line)["text"] for line, _ in zip(lines, range(count), strict=False)]


def write_corpus(root: Path, files: int, paragraphs: int) -> Path:
    """Files of distinct sentences, several chunks each, and one empty file."""
    root.mkdir(parents=True)
    for number in range(files):
        body = "\n\n".join(
            f"File {number}, paragraph {part}: the value of item {number * 100 + part} is "
            f"{(number * 7 + part * 13) % 97}, recorded in ledger {part % 5} by clerk {number}."
            for part in range(paragraphs)
        )
        (root / f"file{number:02}.{'md' if number % 2 else 'txt'}").write_text(body)
    (root / "empty.txt").write_text("  \n")
    return root


def records_of(url: str, collection: str) -> dict[str, tuple[str, dict[str, Any], np.ndarray]]:
    """id -> (text, metadata, vector) of every record."""
    got = open_records(url=url, collection=collection).collection.get(
        include=["documents", "metadatas", "embeddings"]
    )
    return {
        id_: (text or "", dict(metadata or {}), np.asarray(vector))
        for id_, text, metadata, vector in zip(
            got["ids"],
            got["documents"] or [],
            got["metadatas"] or [],
            got["embeddings"] if got["embeddings"] is not None else [],
            strict=True,
        )
    }


def assert_same_index(url: str, local: str, distributed: str) -> None:
    expected, actual = records_of(url, local), records_of(url, distributed)
    assert expected and sorted(actual) == sorted(expected)
    for id_, (text, metadata, vector) in expected.items():
        assert actual[id_][:2] == (text, metadata)
        assert np.abs(actual[id_][2] - vector).max() <= 1e-6


def run(*args: str | Path) -> Result:
    return runner.invoke(app, [str(arg) for arg in args])


# --- embed_dataset ---------------------------------------------------------------------------


@pytest.mark.parametrize("actors", [1, 2])
def test_embed_dataset_equals_encode_documents(ray_address: str, actors: int) -> None:
    texts = scifact_texts("corpus.jsonl", 200)
    rows = [{"text": text, "row": row} for row, text in enumerate(texts)]
    embedded = embed_dataset(
        ray.data.from_items(rows),
        model=MINILM,
        concurrency=actors,
        batch_size=16,
        max_length=64,  # keeps the test fast; the same truncation on both sides
    ).take_all()
    assert sorted(row["row"] for row in embedded) == list(range(len(texts)))
    embedded.sort(key=lambda row: row["row"])
    assert all(row["text"] == text for row, text in zip(embedded, texts, strict=True))
    vectors = np.stack([row["embedding"] for row in embedded])
    assert vectors.dtype == np.float32
    expected = YoutuEmbedder(MINILM, device="cpu", max_length=64).encode_documents(texts)
    assert np.abs(vectors - expected).max() <= 1e-6


def test_query_kind_applies_the_query_instruction(ray_address: str) -> None:
    queries = scifact_texts("queries.jsonl", 40)
    embedded = embed_dataset(
        ray.data.from_items([{"claim": query} for query in queries]),
        model=MINILM,
        column="claim",
        kind="query",
        query_instruction=SCIFACT_TASK,
    ).take_all()
    by_text = {row["claim"]: row["embedding"] for row in embedded}
    vectors = np.stack([by_text[query] for query in queries])
    embedder = YoutuEmbedder(MINILM, device="cpu", query_instruction=SCIFACT_TASK)
    assert np.abs(vectors - embedder.encode_queries(queries)).max() <= 1e-6
    # The instruction reached the model: documents (no instruction) come out different.
    assert np.abs(vectors - embedder.encode_documents(queries)).max() > 1e-2


def test_cpu_actors_split_the_cores(ray_address: str, caplog: pytest.LogCaptureFixture) -> None:
    # The session cluster has 2 CPUs on one node.
    assert [cpus_per_actor(1), cpus_per_actor(2)] == [2, 1]
    assert cpus_per_actor(1, spare=1) == 1  # one CPU left for upstream tasks
    assert cpus_per_actor(2, spare=1) == 1  # no room to spare: every actor placed first
    assert cpus_per_actor(3) == 1 and "fewer CPUs than 3 actors" in caplog.text


def test_embed_dataset_refuses_bad_arguments(ray_address: str) -> None:
    dataset = ray.data.from_items([{"text": "a"}])
    with pytest.raises(ValueError, match="kind must be"):
        embed_dataset(dataset, model=MINILM, kind="passage")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        embed_dataset(dataset, model=MINILM, concurrency=0)


# --- youtu-rag index --ray against local youtu-rag index ---------------------------------------


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("ray_index")
    return [
        Path(shutil.copytree(SAMPLE_DOCS, root / "sample_docs")),
        write_corpus(root / "generated", files=6, paragraphs=6),
    ]


def test_cli_index_on_ray_equals_local_index(
    ray_address: str, chroma_server: str, folders: list[Path]
) -> None:
    common: list[str | Path] = [*folders, "--url", chroma_server, "--model", MINILM, *CHUNKING]
    local = run("index", *common, "-c", "local")
    assert local.exit_code == 0, local.output
    # The real command in its own process, joining the running cluster by address.
    distributed = subprocess.run(
        [
            str(Path(sys.executable).with_name("youtu-rag")),
            "index",
            *map(str, common),
            "-c",
            "on_ray",
            "--ray-address",
            ray_address,
            "--ray-workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert distributed.returncode == 0, distributed.stderr
    files = len(find_files(folders))
    summary = (
        f"Indexed {files} files into 'on_ray': {files - 1} new or changed, 0 unchanged, 1 empty"
    )
    assert summary in distributed.stdout
    assert_same_index(chroma_server, "local", "on_ray")
    assert "error" not in distributed.stderr.lower()
    assert "Embedding" in distributed.stderr  # the progress bar

    before = set(records_of(chroma_server, "on_ray"))
    again = run("index", *common, "-c", "on_ray", "--ray")
    assert again.exit_code == 0, again.output
    assert f"0 new or changed, {files - 1} unchanged" in again.stdout
    assert "0 chunks written, 0 removed" in again.stdout
    assert set(records_of(chroma_server, "on_ray")) == before

    edited = folders[1] / "file03.md"
    old_ids = {
        id_
        for id_, (_, metadata, _) in records_of(chroma_server, "on_ray").items()
        if metadata["source"] == str(edited.resolve())
    }
    edited.write_text(edited.read_text().replace("paragraph 2:", "paragraph two:"))
    changed = run("index", *common, "-c", "on_ray", "--ray")
    assert changed.exit_code == 0, changed.output
    assert "1 new or changed" in changed.stdout
    assert run("index", *common, "-c", "local").exit_code == 0
    assert_same_index(chroma_server, "local", "on_ray")
    after = set(records_of(chroma_server, "on_ray"))
    # Exactly that file's changed chunks went, and only new ones of that file came.
    assert before - after and before - after <= old_ids
    new_records = records_of(chroma_server, "on_ray")
    assert all(new_records[id_][1]["source"] == str(edited.resolve()) for id_ in after - before)

    (folders[1] / "file04.txt").unlink()
    pruned = run("index", *common, "-c", "on_ray", "--ray", "--prune")
    assert pruned.exit_code == 0, pruned.output
    assert "1 deleted files pruned" in pruned.stdout and "0 chunks written" in pruned.stdout
    assert run("index", *common, "-c", "local", "--prune").exit_code == 0
    assert_same_index(chroma_server, "local", "on_ray")
    # The driver left the lexical index (in the local cache) holding exactly the collection.
    lexical = LexicalIndex(lexical_directory(None, chroma_server, "on_ray"))
    assert lexical.ids() == set(records_of(chroma_server, "on_ray"))
    lexical.close()

    # Other chunking rules: refused alike, then re-chunked alike with --rechunk.
    smaller = [*folders, "--url", chroma_server, "--model", MINILM, "--chunk-size", "24"]
    cjk = [*smaller, "--chunk-overlap", "0", "--separators", "cjk"]
    refused = run("index", *cjk, "-c", "on_ray", "--ray")
    assert refused.exit_code == 1 and "--rechunk" in refused.stderr
    rechunked = run("index", *cjk, "-c", "on_ray", "--ray", "--rechunk")
    assert rechunked.exit_code == 0, rechunked.output
    assert f"Re-chunked 'on_ray' under the new chunking rules: {files - 2} files" in (
        rechunked.stdout
    )
    assert "; 0 chunks written" not in rechunked.stdout
    assert run("index", *cjk, "-c", "local", "--rechunk").exit_code == 0
    assert_same_index(chroma_server, "local", "on_ray")
    again = run("index", *cjk, "-c", "on_ray", "--ray")
    assert "0 chunks written, 0 removed" in again.stdout


def test_cli_ray_errors_are_one_line(ray_address: str, chroma_server: str, tmp_path: Path) -> None:
    no_url = run("index", SAMPLE_DOCS, "--ray", "--model", MINILM)
    assert no_url.exit_code == 1 and "--ray writes through a Chroma server" in no_url.stderr
    missing = run("index", tmp_path / "missing", "--ray", "--url", chroma_server, "-m", MINILM)
    assert missing.exit_code == 1, missing.output
    assert missing.stderr.startswith("error: ") and missing.stderr.count("\n") == 1
    assert "no such file or folder" in missing.stderr


def test_bench_index_reports_every_run(ray_address: str, chroma_server: str) -> None:
    result = run(
        "bench",
        "index",
        "--beir",
        REPO / "examples" / "beir_sample",
        "--limit",
        "4",
        "--small",
        "1",
        "--ray-workers",
        "1",
        "--url",
        chroma_server,
        "--model",
        MINILM,
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    methods = [row["method"] for row in report["runs"]]
    assert methods == [
        "local ingest",
        "Ray, 1 worker",
        "local ingest, 1 files",
        "Ray, 1 worker, 1 files",
    ]
    assert [row["chunks"] for row in report["runs"][:2]] == [report["runs"][0]["chunks"]] * 2
    assert all(row["docs_per_s"] > 0 for row in report["runs"])
    assert report["runs"][0]["vs_local"] == 1.0
    assert "logical CPUs" in report["machine"]
    # Every run wrote into a collection of its own and removed it.
    names = [collection.name for collection in connect(url=chroma_server).list_collections()]
    assert not [name for name in names if name.startswith("bench-index-")]


# --- faults ----------------------------------------------------------------------------------


def embedding_actors() -> set[int]:
    """PIDs of this session's Ray actors holding a model (they descend from this process)."""
    return {
        process.pid
        for process in psutil.Process().children(recursive=True)
        if "_EmbedBatches" in " ".join(_cmdline(process))
    }


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return list(process.cmdline())
    except psutil.Error:
        return []


def test_a_killed_actor_is_restarted_and_each_chunk_stored_once(
    ray_address: str,
    chroma_server: str,
    minilm: YoutuEmbedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = write_corpus(tmp_path / "docs", files=8, paragraphs=30)
    options: dict[str, Any] = {"chunk_size": 120, "chunk_overlap": 0}
    chunker = make_chunker(minilm, options["chunk_size"], options["chunk_overlap"])
    expected = {
        id_: (plan.source, index)
        for plan in (plan_file(path, chunker, set()) for path in find_files([docs]))
        for index, id_ in enumerate(plan.ids)
    }
    records = None
    outcome: dict[str, Any] = {}
    # An empty model cache for this test only, to see that the driver loads no model.
    monkeypatch.setattr(loading, "_cache", {})

    def index() -> None:
        try:
            outcome["report"] = index_with_ray(
                [docs],
                url=chroma_server,
                collection="faults",
                model=MINILM,
                concurrency=2,
                batch_size=4,
                **options,
            )
        except BaseException as error:
            outcome["error"] = error

    worker = threading.Thread(target=index)
    worker.start()
    killed, count_at_kill, restarted = None, -1, False
    started: set[int] = set()
    deadline = time.monotonic() + 300
    while worker.is_alive() and time.monotonic() < deadline:
        actors = embedding_actors()
        if killed is not None:
            restarted = restarted or bool(actors - started)
        elif actors:
            started |= actors
            if records is None:
                with suppress(LookupError):  # until the run has created the collection
                    records = open_records(url=chroma_server, collection="faults")
            count = records.count() if records is not None else 0
            if count > 0:  # the first batches are stored: kill an actor in the middle of the run
                killed, count_at_kill = min(actors), count
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    worker.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    assert not loading._cache
    assert killed is not None and 0 < count_at_kill < len(expected)
    assert restarted, "Ray did not restart the killed actor"

    stored = records_of(chroma_server, "faults")
    assert len(stored) == len(expected) == outcome["report"].total_chunks
    assert {
        id_: (meta["source"], meta["chunk"]) for id_, (_, meta, _) in stored.items()
    } == expected
    pairs = [(meta["source"], meta["chunk"]) for _, meta, _ in stored.values()]
    assert len(set(pairs)) == len(pairs)  # no chunk twice under two ids


# --- without Ray -----------------------------------------------------------------------------

WITHOUT_RAY = """
import sys
import youtu_rag, youtu_rag.cli, youtu_rag.ingest.pipeline, youtu_rag.index.store
print("core imports ray:", "ray" in sys.modules)
sys.modules["ray"] = None  # from here on, as if Ray were not installed
from youtu_rag import MINILM, YoutuEmbedder
print(YoutuEmbedder(MINILM, device="cpu").encode_documents(["Ray is optional."]).shape)
try:
    import youtu_rag.ingest.distributed
except ImportError:
    print("distributed needs ray")
sys.argv = ["youtu-rag", "index", sys.argv[1], "--ray", "--url", "http://127.0.0.1:9"]
youtu_rag.cli.app()
"""


def test_the_core_works_without_ray() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_RAY, str(SAMPLE_DOCS)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.stdout.splitlines() == [
        "core imports ray: False",
        "(1, 384)",
        "distributed needs ray",
    ], result.stderr
    assert result.returncode == 1
    error = result.stderr.splitlines()[-1]  # after transformers' weight-loading bar
    assert error.startswith("error: this needs Ray") and "pip install 'youtu-rag[ray]'" in error


def test_ray_skips_what_local_skips(ray_address: str, chroma_server: str, tmp_path: Path) -> None:
    """A Latin-1 file, a binary file, a file name that is not UTF-8 and a link out of the root:
    the same skipped lines, summary, exit code 3 and index on Ray as locally."""
    docs = tmp_path / "mixed"
    docs.mkdir()
    (docs / "good.md").write_text("Masked mean pooling. 掩码平均池化。", encoding="utf-8")
    (docs / "latin.txt").write_bytes("café crème, naïve façade".encode("latin-1"))
    (docs / "binary.txt").write_bytes(b"\x00\x01\x02 not text" * 50)
    odd_name = Path(os.fsdecode(os.fsencode(docs) + b"/caf\xe9.md"))
    odd_name.write_text("A name in Latin-1 bytes. 非UTF-8文件名。", encoding="utf-8")
    (docs / "passwd.md").symlink_to("/etc/passwd")

    def outcome(result: Result, collection: str) -> tuple[int, list[str], str]:
        skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
        summary = result.stdout.strip().splitlines()[-1].replace(repr(collection), "C")
        return result.exit_code, skipped, summary

    common = [docs, "--url", chroma_server, "--model", MINILM, *CHUNKING]
    local = outcome(run("index", *common, "-c", "mixed_local"), "mixed_local")
    on_ray = outcome(run("index", *common, "-c", "mixed_ray", "--ray"), "mixed_ray")
    assert on_ray == local
    exit_code, skipped, summary = local
    assert exit_code == 3
    assert [line.split(":")[0] for line in skipped] == [
        f"skipped {docs / 'passwd.md'}",
        f"skipped {docs / 'binary.txt'}",
        f"skipped {docs / 'latin.txt'}",
    ]
    assert "Indexed 4 files into C: 2 new or changed" in summary
    assert_same_index(chroma_server, "mixed_local", "mixed_ray")
    sources = {
        metadata["source"] for _, metadata, _ in records_of(chroma_server, "mixed_ray").values()
    }
    assert sources == {str(docs / "good.md"), f"{docs}/caf\\xe9.md"}
