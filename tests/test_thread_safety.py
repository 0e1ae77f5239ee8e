"""Concurrent use of one backbone, all at once: embedders with different max_length, a splitter
counting tokens, and foreign code driving the shared tokenizer. Each gets its sequential result."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from youtu_rag import MINILM, YoutuEmbedder
from youtu_rag.ingest.pipeline import make_splitter

SENTENCE = (
    "masked mean pooling keeps the text tokens and drops the instruction while chroma stores "
    "every vector with its source so a retriever can cite the passage it found"
)
WORDS = SENTENCE.split()


def text_of(words: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words))


# Shorter than both limits (64 and 200 tokens), between them, and longer than both.
TEXTS = [text_of(n, seed) for seed, n in enumerate([5, 20, 40, 100, 150, 300, 450, 30])]
LONG_TEXTS = [text_of(1500, seed) for seed in range(100, 103)]
ROUNDS = 3


def test_concurrent_embedders_chunkers_and_foreign_tokenizer_calls(minilm: YoutuEmbedder) -> None:
    short = YoutuEmbedder(MINILM, device="cpu", max_length=64, batch_size=3)
    long = YoutuEmbedder(MINILM, device="cpu", max_length=200, batch_size=4)
    assert short.backbone is long.backbone is minilm.backbone
    splitter = make_splitter(long, chunk_size=60, chunk_overlap=8)

    # Sequential results first: each worker's calls, one by one.
    workloads: list[tuple[str, Callable[[list[str]], Any], list[list[str]]]] = []
    for worker in range(6):
        embedder = short if worker % 2 else long
        rng = random.Random(worker)
        calls = [rng.sample(TEXTS, k=rng.randint(1, 4)) for _ in range(ROUNDS)]
        encode = embedder.encode_queries if worker % 3 else embedder.encode_documents
        workloads.append((f"embedder-{worker}", encode, calls))
    workloads.append(("splitter", splitter.split_text, [[text] for text in LONG_TEXTS] * 2))
    expected = {
        name: [function(*call) if name == "splitter" else function(call) for call in calls]
        for name, function, calls in workloads
    }

    tokenizer = minilm.backbone.tokenizer
    errors: list[BaseException] = []
    results: dict[str, list[Any]] = {}
    start = threading.Barrier(len(workloads) + 1)
    stop_foreign = threading.Event()

    def run(name: str, function: Callable[..., Any], calls: list[list[str]]) -> None:
        try:
            start.wait()
            out = [function(*call) if name == "splitter" else function(call) for call in calls]
            results[name] = out
        except BaseException as error:
            errors.append(error)

    def foreign() -> None:
        """Other code using the shared tokenizer the usual way, flipping its truncation."""
        try:
            start.wait()
            rng = random.Random(7)
            while not stop_foreign.is_set():
                tokenizer(TEXTS, truncation=True, max_length=rng.choice([9, 17, 33]))
                tokenizer.tokenize(LONG_TEXTS[0][:2000])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=workload) for workload in workloads]
    threads.append(threading.Thread(target=foreign))
    assert len(threads) == 8
    for thread in threads:
        thread.start()
    for thread in threads[:-1]:
        thread.join(timeout=600)
    stop_foreign.set()
    threads[-1].join(timeout=60)

    assert errors == []
    assert results["splitter"] == expected["splitter"]
    assert len(expected["splitter"][0]) > 10
    worst = 0.0
    for name, _, _ in workloads[:-1]:
        for got, want in zip(results[name], expected[name], strict=True):
            worst = max(worst, float(np.abs(got - want).max()))
    assert worst <= 1e-6
    # The two lengths really differ: a text longer than both is cut at each one's own limit.
    assert np.abs(short.encode_documents(TEXTS[6]) - long.encode_documents(TEXTS[6])).max() > 1e-2
