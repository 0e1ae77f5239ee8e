"""A 50 MB text file through the real `youtu-rag index`: memory stays bounded, Ctrl-C stops it
after the current batch with what was written kept, and the next run continues from there.

Embedding all 50 MB with MiniLM on a small CPU takes hours, so the run is interrupted (SIGINT)
once it has written two batches; by then it has decoded the whole file once (to check it) and
chunked its first segment, where the old ingest had read the whole file into memory and was
still splitting it. Peak RSS is taken from the kernel (``wait4``) for the child alone, and
compared with the same run on a 1 MB file.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import chromadb
from chromadb.api.shared_system_client import SharedSystemClient

from youtu_rag import MINILM, YoutuEmbedder
from youtu_rag.index.store import ChromaStore
from youtu_rag.ingest.pipeline import chunk_id, ingest

#: Beyond the model, the libraries and one embedding batch, ingest holds one text segment, one
#: write batch and one lookup page, whatever the file size: a few MB. The margin is for allocator
#: noise between two processes (measured gaps: -3 and +20 MB); reading a 50 MB file whole costs
#: hundreds of MB, and the old ingest reached 4 GB.
EXTRA_MEMORY_BOUND_MB = 96
SENTENCE = (
    "masked mean pooling keeps the text tokens and drops the instruction while chroma stores "
    "every vector with its source so a retriever can cite the passage it found photosynthesis "
    "turns sunlight into sugar the market fell on monday a striker scored twice in the final"
)
WORDS = SENTENCE.split()
#: The old ingest read and split a whole file before writing anything: hours for 50 MB here.
FIRST_WRITES_WITHIN_S = 300


def write_text_file(path: Path, megabytes: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    target, written = megabytes << 20, 0
    with path.open("w", encoding="utf-8") as out:
        while written < target:
            paragraph = " ".join(rng.choices(WORDS, k=rng.randint(40, 160))) + ".\n\n"
            out.write(paragraph)
            written += len(paragraph)


def index_until(folder: Path, db: Path, writes: int) -> tuple[int, float, str]:
    """Run `youtu-rag -v index` (64-token chunks: quick batches) and send SIGINT once it logged
    ``writes`` written batches.

    Returns (exit status, peak RSS in MB, stdout).
    """
    command = Path(sys.executable).with_name("youtu-rag")
    process = subprocess.Popen(
        [command, "-v", "index", folder, "-m", MINILM, "--persist-dir", db, "--chunk-size", "64"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert process.stdout is not None and process.stderr is not None
    seen = 0
    watchdog = threading.Timer(FIRST_WRITES_WITHIN_S, process.kill)
    watchdog.start()
    try:
        for line in process.stderr:
            if "(youtu_rag.ingest.pipeline): wrote" in line:
                seen += 1
                if seen == writes:
                    process.send_signal(signal.SIGINT)
        stdout = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    finally:
        watchdog.cancel()
        if process.returncode is None:
            process.kill()
            process.wait()
    return process.returncode, usage.ru_maxrss / 1024, stdout


def stored_chunks(db: Path) -> list[tuple[int, str, str]]:
    SharedSystemClient.clear_system_cache()  # another process wrote the database meanwhile
    collection = chromadb.PersistentClient(path=str(db)).get_collection(
        "youtu_rag", embedding_function=None
    )
    records = collection.get(include=["documents", "metadatas"])
    return sorted(
        (int(str(metadata["chunk"])), record_id, text or "")
        for record_id, metadata, text in zip(
            records["ids"], records["metadatas"] or [], records["documents"] or [], strict=True
        )
    )


def test_a_50_mb_file_in_bounded_memory_interrupted_and_resumed(
    minilm: YoutuEmbedder, tmp_path: Path
) -> None:
    small, big = tmp_path / "small" / "one.txt", tmp_path / "big" / "fifty.txt"
    write_text_file(small, 1)
    write_text_file(big, 50)
    assert big.stat().st_size >= 50 << 20

    with ThreadPoolExecutor(2) as pool:  # the two runs at once: half the wall time
        small_run = pool.submit(index_until, small.parent, tmp_path / "db_small", 2)
        big_run = pool.submit(index_until, big.parent, tmp_path / "db_big", 2)
        (status, small_peak, _), (big_status, big_peak, stdout) = (
            small_run.result(),
            big_run.result(),
        )
    assert status == 130
    assert big_status == 130, stdout
    assert stdout.startswith("Stopped by Ctrl-C: ")
    assert "Run the same command again to continue." in stdout
    print(f"peak RSS: 1 MB file {small_peak:.0f} MB, 50 MB file {big_peak:.0f} MB")
    assert big_peak <= small_peak + EXTRA_MEMORY_BOUND_MB

    # Consistent: the first chunks of the file, in order, each with the id a full run gives it.
    source = str(big.resolve())
    first = stored_chunks(tmp_path / "db_big")
    assert len(first) >= 2 * 32
    assert [index for index, _, _ in first] == list(range(len(first)))
    assert all(record_id == chunk_id(source, i, text) for i, record_id, text in first)

    # Resumable: the next run skips what is stored and goes on from there (in this process,
    # stopped again once it wrote a batch).
    store = ChromaStore.open(minilm, persist_dir=tmp_path / "db_big")
    stop = threading.Event()

    class StopAfterAWrite(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("wrote"):
                stop.set()

    logger = logging.getLogger("youtu_rag.ingest.pipeline")
    handler, level = StopAfterAWrite(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        report = ingest(store, [big.parent], chunk_size=64, stop=stop)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert report.interrupted and report.chunks_written == minilm.batch_size
    resumed = stored_chunks(tmp_path / "db_big")
    assert resumed[: len(first)] == first
    assert [index for index, _, _ in resumed] == list(range(len(first) + minilm.batch_size))
