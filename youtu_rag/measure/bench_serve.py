"""``youtu-rag bench serve``: what one shared server costs or gains against the model in process,
and what dynamic batching gains over one request per forward pass.

One run, one model, the same requests and the same torch thread count everywhere:

- in process, one request at a time (what an application that loads the model does), and all
  texts in one call (the ceiling: perfect batching, no HTTP);
- a ``youtu-rag serve`` with dynamic batching (its defaults);
- a ``youtu-rag serve`` with one request per forward pass (``--max-wait-ms 0
  --max-requests-per-batch 1``): the same server without the batching.

Both servers run side by side as child processes on 127.0.0.1 and are driven by 1, 8 and 32
concurrent clients (asyncio + httpx in this process). The runs interleave, round after round,
and each keeps its fastest round, so a burst of load from elsewhere skews no single row. The
clients share the CPU with the servers; the in-process rows have no HTTP to pay for.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
from prometheus_client.parser import text_string_to_metric_families

from youtu_rag.measure.evaluation import load_beir
from youtu_rag.model.embedder import YoutuEmbedder
from youtu_rag.serve.process import running_server

logger = logging.getLogger(__name__)

#: Server settings of each mode, as ``youtu-rag serve`` options.
MODES: dict[str, list[str]] = {
    "dynamic_batching": [],
    "one_request_per_forward": ["--max-wait-ms", "0", "--max-requests-per-batch", "1"],
}
_WARMUP_REQUESTS = 8


@dataclass
class Run:
    """One timed pass over all the requests."""

    seconds: float
    latencies: list[float]
    texts: int
    tokens: int
    texts_per_forward: float | None = None

    def report(self) -> dict[str, float | None]:
        latencies = np.asarray(self.latencies) * 1000
        return {
            "texts_per_s": self.texts / self.seconds,
            "tokens_per_s": self.tokens / self.seconds,
            "p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)),
            "texts_per_forward": self.texts_per_forward,
        }


def load_requests(
    beir: str | Path, input_type: str, count: int, texts_per_request: int
) -> list[list[str]]:
    """``count`` requests of ``texts_per_request`` texts: the BEIR queries for query traffic,
    the corpus for documents, in file order, cycled if too few."""
    dataset = load_beir(beir)
    pool = list(dataset.queries.values() if input_type == "query" else dataset.corpus.values())
    if not pool:
        raise ValueError(f"{beir} has no {input_type} texts")
    return [
        [pool[(index * texts_per_request + k) % len(pool)] for k in range(texts_per_request)]
        for index in range(count)
    ]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpu": _cpu_name(),
        "logical_cpus": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__,
    }


def serve_options(
    threads: int, batch_size: int, max_wait_ms: float, device: str | None, dtype: str | None
) -> list[str]:
    """The ``youtu-rag serve`` options that run a server as the in-process model runs."""
    options = ["--threads", str(threads), "--batch-size", str(batch_size)]
    options += ["--max-wait-ms", str(max_wait_ms)]
    for option, value in (("--device", device), ("--dtype", dtype)):
        if value is not None:
            options += [option, value]
    return options


def _in_process(embedder: YoutuEmbedder, requests: list[list[str]], prefix: str) -> tuple[Run, Run]:
    """One request at a time, then every text in one call."""
    latencies = []
    started = time.perf_counter()
    for texts in requests:
        start = time.perf_counter()
        embedder.encode(texts, prefix)
        latencies.append(time.perf_counter() - start)
    sequential = time.perf_counter() - started
    everything = [text for texts in requests for text in texts]
    tokens = sum(embedder.token_counts(everything, prefix).lengths)
    start = time.perf_counter()
    embedder.encode(everything, prefix)
    at_once = time.perf_counter() - start
    return (
        Run(sequential, latencies, len(everything), tokens, None),
        Run(at_once, [at_once], len(everything), tokens, None),
    )


def _batch_totals(url: str) -> tuple[float, float]:
    """(texts, forward passes) the server has run so far."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        if family.name == "youtu_rag_batch_texts":
            values = {sample.name: sample.value for sample in family.samples}
    return values.get("youtu_rag_batch_texts_sum", 0.0), values.get(
        "youtu_rag_batch_texts_count", 0.0
    )


async def _drive(url: str, requests: list[list[str]], clients: int, input_type: str) -> Run:
    """``clients`` concurrent clients, each sending its next request when the last returned."""
    latencies: list[float] = []
    tokens = 0
    pending = iter(requests)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as http:

        async def client() -> None:
            nonlocal tokens
            for texts in pending:  # one shared iterator: each request is sent once
                start = time.perf_counter()
                response = await http.post(
                    "/v1/embeddings",
                    json={"input": texts, "input_type": input_type, "encoding_format": "base64"},
                )
                if response.status_code != 200:
                    raise RuntimeError(f"server answered {response.status_code}: {response.text}")
                latencies.append(time.perf_counter() - start)
                tokens += int(response.json()["usage"]["prompt_tokens"])

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        seconds = time.perf_counter() - started
    return Run(seconds, latencies, sum(len(texts) for texts in requests), tokens)


def _timed_server_run(url: str, requests: list[list[str]], clients: int, input_type: str) -> Run:
    texts_before, batches_before = _batch_totals(url)
    run = asyncio.run(_drive(url, requests, clients, input_type))
    texts_after, batches_after = _batch_totals(url)
    run.texts_per_forward = (texts_after - texts_before) / max(batches_after - batches_before, 1)
    return run


def _keep_fastest(best: dict[str, Run], key: str, run: Run) -> None:
    if key not in best or run.seconds < best[key].seconds:
        best[key] = run


def bench_serve(
    model: str,
    requests: list[list[str]],
    *,
    input_type: str = "query",
    clients: tuple[int, ...] = (1, 8, 32),
    repeats: int = 2,
    threads: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    batch_size: int = 32,
    max_wait_ms: float = 2.0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Throughput and latency of the three ways, as a JSON-ready report."""
    if threads is not None:
        torch.set_num_threads(threads)
    thread_count = torch.get_num_threads()
    embedder = YoutuEmbedder(model, device=device, dtype=dtype, batch_size=batch_size)
    prefix = embedder.query_prefix if input_type == "query" else embedder.document_prefix
    server_options = serve_options(thread_count, batch_size, max_wait_ms, device, dtype)
    say = progress or (lambda message: logger.info("%s", message))
    best: dict[str, Run] = {}
    with (
        tempfile.TemporaryDirectory() as logs,
        running_server(model, Path(logs), *server_options, *MODES["dynamic_batching"]) as dynamic,
        running_server(
            model, Path(logs), *server_options, *MODES["one_request_per_forward"]
        ) as single,
    ):
        servers = {"dynamic_batching": dynamic.url, "one_request_per_forward": single.url}
        warmup = requests[:_WARMUP_REQUESTS]
        _in_process(embedder, warmup, prefix)
        for url in servers.values():
            asyncio.run(_drive(url, warmup, 2, input_type))
        for round_number in range(1, repeats + 1):
            say(f"round {round_number}/{repeats}: in process")
            sequential, at_once = _in_process(embedder, requests, prefix)
            _keep_fastest(best, "in_process/one_request_at_a_time", sequential)
            _keep_fastest(best, "in_process/all_texts_in_one_call", at_once)
            for count in clients:
                for mode, url in servers.items():
                    say(f"round {round_number}/{repeats}: {mode}, {count} clients")
                    run = _timed_server_run(url, requests, count, input_type)
                    _keep_fastest(best, f"{mode}/{count}", run)

    baseline = best["in_process/one_request_at_a_time"].report()["texts_per_s"]
    assert baseline is not None

    def with_ratio(run: Run) -> dict[str, float | None]:
        row = run.report()
        rate = row["texts_per_s"]
        row["vs_in_process"] = None if rate is None else rate / baseline
        return row

    server_rows = {
        mode: {str(count): with_ratio(best[f"{mode}/{count}"]) for count in clients}
        for mode in MODES
    }
    return {
        "model": embedder.model_name,
        "device": str(embedder.backbone.device),
        "dtype": str(embedder.backbone.dtype).removeprefix("torch."),
        "threads": thread_count,
        "machine": machine(),
        "input_type": input_type,
        "requests": len(requests),
        "texts_per_request": len(requests[0]),
        "batch_size": batch_size,
        "max_wait_ms": max_wait_ms,
        "repeats": repeats,
        "in_process": {
            "one_request_at_a_time": with_ratio(best["in_process/one_request_at_a_time"]),
            "all_texts_in_one_call": with_ratio(best["in_process/all_texts_in_one_call"]),
        },
        "server": server_rows,
        "batching_gain": {
            str(count): best[f"one_request_per_forward/{count}"].seconds
            / best[f"dynamic_batching/{count}"].seconds
            for count in clients
        },
    }
