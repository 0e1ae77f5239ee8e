"""The "big request + small probes" scenario of ``youtu-rag bench serve``: how long a one-word
request waits while one large request is being embedded.

One server, one run: the large request (many long documents) is timed alone, which gives its
batches' mean time; one-word query probes are timed one after another on the idle server, then
again while the large request is in flight. A probe cannot interrupt a forward pass, so the goal
is that it waits about one batch, not the whole large request:
p50 during <= 3 x p50 idle + one batch's mean time. The large request's vectors are checked
against the same model in process: fair scheduling must not change or reorder them.
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from youtu_rag.model.embedder import YoutuEmbedder
from youtu_rag.serve.process import running_server

__all__ = ["bench_fairness", "big_request_texts"]

PROBE = "weather"


def big_request_texts(pool: list[str], count: int, characters: int) -> list[str]:
    """``count`` documents of ``characters`` characters each, cut from ``pool`` (cycled and
    joined until long enough)."""
    joined = " ".join(pool)
    if not joined.strip():
        raise ValueError("no text to build the large request from")
    while len(joined) < count * characters:
        joined += " " + joined
    return [joined[i * characters : (i + 1) * characters] for i in range(count)]


def _batch_seconds(url: str) -> tuple[float, float]:
    """(seconds, forward passes) the server has run so far."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        if family.name == "youtu_rag_batch_seconds":
            values = {sample.name: sample.value for sample in family.samples}
    return values.get("youtu_rag_batch_seconds_sum", 0.0), values.get(
        "youtu_rag_batch_seconds_count", 0.0
    )


async def _probe(http: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    response = await http.post("/v1/embeddings", json={"input": [PROBE], "input_type": "query"})
    response.raise_for_status()
    return time.perf_counter() - started


async def _big_request(http: httpx.AsyncClient, big: list[str]) -> httpx.Response:
    response = await http.post(
        "/v1/embeddings", json={"input": big, "input_type": "document", "encoding_format": "base64"}
    )
    response.raise_for_status()
    return response


async def _scenario(url: str, big: list[str], probes: int) -> dict[str, Any]:
    """The large request alone (twice: the first warms up; the second gives its batches' time,
    no small request having come), idle probes, then the large request with probes."""
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        await _big_request(http, big)
        seconds_before, batches_before = _batch_seconds(url)
        started = time.perf_counter()
        await _big_request(http, big)
        alone_seconds = time.perf_counter() - started
        seconds_after, batches_after = _batch_seconds(url)
        batches = batches_after - batches_before
        idle = [await _probe(http) for _ in range(probes)]
        started = time.perf_counter()
        request = asyncio.create_task(_big_request(http, big))
        await asyncio.sleep(0.05)  # the large request is queued first
        during: list[float] = []
        while not request.done():
            during.append(await _probe(http))
        response = await request
        big_seconds = time.perf_counter() - started
    answered = response.json()["data"]
    data = sorted(answered, key=lambda item: int(item["index"]))
    vectors = np.stack(
        [np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4") for item in data]
    )
    return {
        "idle": idle,
        "during": during,
        "alone_seconds": alone_seconds,
        "big_seconds": big_seconds,
        "batches": batches,
        "batch_seconds": (seconds_after - seconds_before) / max(batches, 1),
        "vectors": vectors,
        "in_order": [int(item["index"]) for item in answered] == list(range(len(big))),
    }


def bench_fairness(
    model: str,
    pool: list[str],
    *,
    texts: int = 256,
    characters: int = 900,
    probes: int = 20,
    server_options: tuple[str, ...] = (),
    embedder: YoutuEmbedder | None = None,
) -> dict[str, Any]:
    """Probe latency idle and during one large request, as a JSON-ready report.

    Args:
        model: what the server serves.
        pool: texts to cut the large request from (the BEIR corpus).
        texts: documents in the large request.
        characters: characters per document.
        probes: idle probes (during the large request, as many as fit).
        server_options: ``youtu-rag serve`` options (threads, batch size...).
        embedder: the same model in process, for the exactness check (loaded if not given).
    """
    big = big_request_texts(pool, texts, characters)
    with (
        tempfile.TemporaryDirectory() as logs,
        running_server(model, Path(logs), *server_options) as server,
    ):
        result = asyncio.run(_scenario(server.url, big, probes))
    local = embedder or YoutuEmbedder(model)
    expected = local.encode_documents(big)
    idle_p50 = statistics.median(result["idle"]) * 1000
    during_p50 = statistics.median(result["during"]) * 1000 if result["during"] else None
    batch_ms = result["batch_seconds"] * 1000
    goal = 3 * idle_p50 + batch_ms
    return {
        "big_request": {"texts": texts, "characters": characters},
        "probe_p50_idle_ms": idle_p50,
        "probe_p50_during_ms": during_p50,
        "probe_max_during_ms": max(result["during"]) * 1000 if result["during"] else None,
        "probes_during": len(result["during"]),
        "big_request_alone_s": result["alone_seconds"],
        "big_request_with_probes_s": result["big_seconds"],
        "big_request_forward_passes": result["batches"],
        "big_request_batch_ms": batch_ms,
        "goal_ms": goal,
        "meets_goal": during_p50 is not None and during_p50 <= goal,
        "big_vectors_max_abs_diff": float(np.abs(result["vectors"] - expected).max()),
        "big_in_order": result["in_order"],
    }
