"""Throughput and latency benchmarks: what a user compares before picking an embedding stack.

``bench_encode`` embeds the same texts, in one process, with the same batch size and thread count,
four ways: youtu-rag in float32 and in bfloat16, ``SentenceTransformer.encode`` (the tool a user
would otherwise reach for), and the published Youtu-Embedding inference algorithm with its own
defaults (:mod:`youtu_rag.measure.seed_baseline`, also the tests' oracle). Methods run interleaved,
round after round, and each keeps its best round, so a burst of load from another process skews
no single method. Speed is reported as documents/s, tokens/s and effective TFLOP/s, the last
against a matmul peak measured in the same run, so "fast" means "close to what this machine can
do", not just "faster than X".

``bench_retrieval`` measures query latency and HNSW recall against exact search in embedded
Chroma at a given collection size.
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from transformers import PreTrainedModel

from youtu_rag.measure.evaluation import load_beir
from youtu_rag.measure.seed_baseline import SEED_MAX_LENGTH, seed_encode
from youtu_rag.model.embedder import DEFAULT_BATCH_SIZE, YoutuEmbedder
from youtu_rag.model.loading import cpu_has_bf16

logger = logging.getLogger(__name__)

_WARMUP_TEXTS = 4


# --- machine peak and model FLOPs --------------------------------------------------------------


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype, device: torch.device, min_seconds: float = 0.05) -> float:
    """Best FLOP/s of a square ``x @ W.T`` (a Linear layer's layout) in ``dtype``, the size
    doubled until one product takes ``min_seconds``.

    Where the hardware lacks a fast path for the dtype (bfloat16 on a CPU without AVX-512 BF16
    or AMX) the doubling stops early, so this stays quick and honest either way.

    Args:
        dtype: the matmul's dtype.
        device: where it runs.
        min_seconds: the product time at which the doubling stops.

    Returns:
        FLOP/s.
    """
    best = 0.0
    size = 256
    while True:
        left = torch.randn(size, size, device=device).to(dtype)
        right = torch.randn(size, size, device=device).to(dtype)
        torch.mm(left, right.T)
        _synchronize(device)
        elapsed = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            torch.mm(left, right.T)
            _synchronize(device)
            elapsed = min(elapsed, time.perf_counter() - start)
        best = max(best, 2 * size**3 / max(elapsed, 1e-9))
        if elapsed >= min_seconds or size >= 8192:
            return best
        size *= 2


def _linear_parameters_per_token(model: torch.nn.Module) -> int:
    """Weights every token multiplies through: the encoder's Linear layers, not its embeddings
    (a lookup) nor a per-sequence pooler."""
    return sum(
        module.weight.numel()
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and "pooler" not in name
    )


def forward_flops(model: PreTrainedModel, lengths: Sequence[int]) -> float:
    """Useful FLOPs of one forward pass over texts of these token lengths (padding excluded).

    Two per weight per token in the Linear layers, plus the attention products
    (QK^T and AV: ``2 * n^2 * heads * 2 * head_dim`` per layer for a text of n tokens).

    Args:
        model: the encoder or decoder.
        lengths: each text's token count.

    Returns:
        FLOPs.
    """
    config = model.config
    heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    layers = int(config.num_hidden_layers)
    tokens = float(sum(lengths))
    squares = float(sum(length * length for length in lengths))
    linear = 2.0 * _linear_parameters_per_token(model) * tokens
    attention = 2.0 * layers * heads * 2 * head_dim * squares
    return linear + attention


# --- encode benchmark ----------------------------------------------------------------------------


@dataclass
class Method:
    """One way to embed the texts, with what it costs to run once."""

    name: str
    encode: Callable[[list[str]], np.ndarray]
    dtype: torch.dtype
    lengths: list[int]
    flops: float
    seconds: float = float("inf")
    vectors: np.ndarray | None = None

    def report(self, documents: int, peak: float) -> dict[str, float]:
        """Its best round as rates.

        Args:
            documents: texts embedded per round.
            peak: the matmul peak of its dtype, in FLOP/s.

        Returns:
            ``seconds``, ``docs_per_s``, ``tokens_per_s``, ``tflops`` and ``peak_fraction``.
        """
        tflops = self.flops / self.seconds / 1e12
        return {
            "seconds": round(self.seconds, 4),
            "docs_per_s": documents / self.seconds,
            "tokens_per_s": sum(self.lengths) / self.seconds,
            "tflops": tflops,
            "peak_fraction": tflops * 1e12 / peak,
        }


def _load_sentence_transformer(
    source: str, device: torch.device, max_length: int, exact: bool
) -> Any:
    """The same weights in sentence-transformers, truncating at ``max_length`` (``exact``) or at
    its own ``max_seq_length`` when that is shorter."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise RuntimeError(
            "bench encode compares against sentence-transformers: pip install sentence-transformers"
        ) from error
    model = SentenceTransformer(source, device=str(device), model_kwargs={"dtype": torch.float32})
    if exact or model.max_seq_length is None or model.max_seq_length > max_length:
        model.max_seq_length = max_length
    return model


def _min_cosine(left: np.ndarray | None, right: np.ndarray | None) -> float:
    if left is None or right is None:
        return float("nan")
    return float(np.min(np.sum(left.astype(np.float64) * right.astype(np.float64), axis=1)))


def load_bench_texts(beir: str | Path, limit: int) -> list[str]:
    """The first ``limit`` corpus documents, as MTEB would embed them.

    Args:
        beir: a BEIR-format folder.
        limit: how many documents.

    Returns:
        The texts.

    Raises:
        ValueError: the corpus is empty (or the folder malformed, see
            :func:`~youtu_rag.measure.evaluation.load_beir`).
    """
    texts = list(load_beir(beir).corpus.values())[:limit]
    if not texts:
        raise ValueError(f"{beir} has no documents")
    return texts


def cpu_capability() -> dict[str, Any]:
    """What this processor offers torch: its vector ISA and whether bfloat16 matmul is native.

    The same bench runs on AVX2-only CPUs, where bfloat16 is several times slower than float32,
    and on CPUs with AMX or AVX-512 BF16, where it is several times faster: read the bf16 rows
    against this, never against an assumption.
    """
    return {
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_native_bf16": cpu_has_bf16(),
    }


def bench_encode(
    model: str,
    texts: list[str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    repeats: int = 1,
    device: str | None = None,
    max_length: int | None = None,
) -> dict[str, Any]:
    """Time the methods on ``texts``; see the module docstring.

    Each method truncates at its own default (youtu-rag: the model's limit; sentence-transformers:
    its ``max_seq_length``; the seed: 1024) unless ``max_length`` sets one cap for all.
    sentence-transformers cannot load a ``utu`` checkpoint (its own code does not import under
    transformers 5), so for those it is left out and its keys are ``None``.

    Args:
        model: hub id or local directory.
        texts: the documents to embed.
        batch_size: texts per forward pass, for every method.
        repeats: rounds; each method keeps its fastest.
        device: where to run (default: the best available).
        max_length: one truncation for every method.

    Returns:
        Flat headline keys (``speedup_fp32_vs_st``, ``speedup_bf16_vs_st``,
        ``speedup_fp32_vs_seed``, ``peak_fraction_fp32``, ``peak_fraction_bf16``, ...) and a
        ``methods`` table with docs/s, tokens/s, TFLOP/s and peak fraction of each.

    Raises:
        ValueError: ``repeats`` is below 1.
        RuntimeError: sentence-transformers is missing for a model it can load.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    options: dict[str, Any] = {"device": device, "batch_size": batch_size, "max_length": max_length}
    fp32 = YoutuEmbedder(model, dtype="float32", **options)
    bf16 = YoutuEmbedder(model, dtype="bfloat16", **options)
    backbone = fp32.backbone
    run_device = backbone.device
    tokenizer = backbone.tokenizer
    prefix = fp32.document_prefix
    full_lengths = [
        len(ids)
        for ids in tokenizer(
            [prefix + text for text in texts], add_special_tokens=True, verbose=False
        )["input_ids"]
    ]
    positions = int(getattr(backbone.model.config, "max_position_embeddings", SEED_MAX_LENGTH))
    seed_max_length = max_length or min(SEED_MAX_LENGTH, positions)

    def lengths(cap: int) -> list[int]:
        return [min(length, cap) for length in full_lengths]

    # The seed runs on the model object youtu-rag loaded (same weights, same attention kernel),
    # so the ratio measures the algorithm: one padded batch and its truncation, against ours.
    def seed(batch: list[str]) -> np.ndarray:
        return seed_encode(backbone.model, tokenizer, batch, prefix, seed_max_length)

    candidates: list[tuple[str, Callable[[list[str]], np.ndarray], torch.dtype, int]] = [
        ("youtu_rag_fp32", fp32.encode_documents, torch.float32, fp32.max_length),
        ("youtu_rag_bf16", bf16.encode_documents, torch.bfloat16, bf16.max_length),
        ("seed_fp32", seed, torch.float32, seed_max_length),
    ]
    st_max_length: int | None = None
    if fp32.attention is None:
        # The very weights youtu-rag loaded, so the comparison is of code, not of checkpoints.
        sentence_transformer = _load_sentence_transformer(
            fp32.profile.source, run_device, fp32.max_length, exact=max_length is not None
        )
        st_max_length = int(sentence_transformer.max_seq_length)

        def st_encode(batch: list[str]) -> np.ndarray:
            vectors: np.ndarray = sentence_transformer.encode(
                batch,
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            return vectors

        candidates.append(("sentence_transformers_fp32", st_encode, torch.float32, st_max_length))

    methods = {
        name: Method(name, encode, dtype, lengths(cap), forward_flops(backbone.model, lengths(cap)))
        for name, encode, dtype, cap in candidates
    }
    order = list(methods.values())
    before = {dtype: matmul_peak(dtype, run_device) for dtype in (torch.float32, torch.bfloat16)}
    for method in order:
        method.encode(texts[:_WARMUP_TEXTS])
    for round_number in range(repeats):
        # Rotate who goes first, so a warming machine favours no method.
        shift = round_number % len(order)
        for method in order[shift:] + order[:shift]:
            _synchronize(run_device)
            start = time.perf_counter()
            vectors = method.encode(texts)
            _synchronize(run_device)
            elapsed = time.perf_counter() - start
            logger.info("round %d: %s %.2fs", round_number + 1, method.name, elapsed)
            method.seconds = min(method.seconds, elapsed)
            method.vectors = vectors

    # Measured before and after the rounds, keeping the best: a burst of load from another
    # process during one measurement must not make the methods look faster than the machine.
    peaks = {
        dtype: max(before[dtype], matmul_peak(dtype, run_device))
        for dtype in (torch.float32, torch.bfloat16)
    }
    table = {name: row.report(len(texts), peaks[row.dtype]) for name, row in methods.items()}
    ours32, ours16, seed_row = table["youtu_rag_fp32"], table["youtu_rag_bf16"], table["seed_fp32"]
    st = table.get("sentence_transformers_fp32")
    st_vectors = methods["sentence_transformers_fp32"].vectors if st else None
    return {
        "model": fp32.model_name,
        "attention": fp32.attention,
        "device": str(run_device),
        **(cpu_capability() if run_device.type == "cpu" else {}),
        "threads": torch.get_num_threads(),
        "documents": len(texts),
        "batch_size": batch_size,
        "repeats": repeats,
        "max_length": fp32.max_length,
        "st_max_length": st_max_length,
        "seed_max_length": seed_max_length,
        "peak_tflops_fp32": peaks[torch.float32] / 1e12,
        "peak_tflops_bf16": peaks[torch.bfloat16] / 1e12,
        "speedup_fp32_vs_st": ours32["docs_per_s"] / st["docs_per_s"] if st else None,
        "speedup_bf16_vs_st": ours16["docs_per_s"] / st["docs_per_s"] if st else None,
        "speedup_bf16_vs_fp32": ours16["docs_per_s"] / ours32["docs_per_s"],
        "speedup_fp32_vs_seed": ours32["docs_per_s"] / seed_row["docs_per_s"],
        "peak_fraction_fp32": ours32["peak_fraction"],
        "peak_fraction_bf16": ours16["peak_fraction"],
        "min_cosine_fp32_vs_st": _min_cosine(methods["youtu_rag_fp32"].vectors, st_vectors)
        if st
        else None,
        "min_cosine_bf16_vs_fp32": _min_cosine(
            methods["youtu_rag_bf16"].vectors, methods["youtu_rag_fp32"].vectors
        ),
        "min_cosine_fp32_vs_seed": _min_cosine(
            methods["youtu_rag_fp32"].vectors, methods["seed_fp32"].vectors
        ),
        "methods": table,
    }


# --- retrieval benchmark -------------------------------------------------------------------------


Distribution = Literal["uniform", "clustered"]


def unit_vectors(generator: np.random.Generator, count: int, dim: int) -> np.ndarray:
    """``count`` random unit rows of ``dim`` floats: uniform on the sphere."""
    vectors = generator.standard_normal((count, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def _clustered_vectors(
    generator: np.random.Generator, centres: np.ndarray, count: int
) -> np.ndarray:
    """Unit vectors scattered around random centres, each at cosine about 0.7 to its centre:
    topics, as real embeddings have them."""
    dim = centres.shape[1]
    noise = generator.standard_normal((count, dim), dtype=np.float32) / np.sqrt(dim)
    vectors: np.ndarray = centres[generator.integers(0, len(centres), count)] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def bench_retrieval(
    sizes: Sequence[int] = (10_000, 100_000),
    *,
    dim: int = 384,
    queries: int = 200,
    k: int = 10,
    seed: int = 0,
    path: str | Path | None = None,
    ef_search: int | None = None,
    distribution: Distribution = "uniform",
) -> dict[str, Any]:
    """Single-query latency (p50/p95) and HNSW recall@k against exact search in embedded Chroma.

    ``uniform`` vectors are spread evenly over the sphere: every neighbour is barely nearer
    than any other vector, the worst case for HNSW, so its recall is a floor. ``clustered``
    vectors sit around ``size / 100`` random centres, the structure real embeddings have.
    Queries are drawn like the data. Each size gets a fresh on-disk collection (cosine space,
    Chroma's HNSW defaults or ``ef_search`` candidates per query) under ``path`` or a temp dir.

    Args:
        sizes: collection sizes to measure.
        dim: vector dimension.
        queries: single queries timed per size.
        k: results per query.
        seed: random seed of the vectors.
        path: where the collections go (default: a temporary directory).
        ef_search: HNSW candidates per query (default: Chroma's).
        distribution: ``"uniform"`` or ``"clustered"``.

    Returns:
        ``dim``, ``queries``, ``k``, ``ef_search``, ``distribution`` and one ``results`` row
        per size: build seconds, p50/p95 latency, exact-search p50 and recall@k.
    """
    import chromadb
    from chromadb.api.collection_configuration import CreateHNSWConfiguration
    from chromadb.config import Settings

    generator = np.random.default_rng(seed)
    hnsw: CreateHNSWConfiguration = {"space": "cosine"}
    if ef_search is not None:
        hnsw["ef_search"] = ef_search
    results: list[dict[str, float | int]] = []
    with tempfile.TemporaryDirectory(prefix="youtu_rag_bench_") as scratch:
        root = Path(path or scratch)
        for size in sizes:
            if distribution == "clustered":
                centres = unit_vectors(generator, max(size // 100, 1), dim)
                vectors = _clustered_vectors(generator, centres, size)
                probes = _clustered_vectors(generator, centres, queries)
            else:
                vectors = unit_vectors(generator, size, dim)
                probes = unit_vectors(generator, queries, dim)
            client = chromadb.PersistentClient(
                path=str(root / f"n{size}"), settings=Settings(anonymized_telemetry=False)
            )
            collection = client.create_collection(
                f"bench_{size}",
                embedding_function=None,
                configuration={"hnsw": hnsw},
            )
            ids = [str(index) for index in range(size)]
            step = client.get_max_batch_size()
            start = time.perf_counter()
            for offset in range(0, size, step):
                collection.add(
                    ids=ids[offset : offset + step], embeddings=vectors[offset : offset + step]
                )
            build_seconds = time.perf_counter() - start

            latencies: list[float] = []
            exact_latencies: list[float] = []
            overlaps: list[float] = []
            top = min(k, size)
            for probe in probes:
                start = time.perf_counter()
                found = collection.query(
                    query_embeddings=probe[None, :], n_results=top, include=["distances"]
                )
                latencies.append(time.perf_counter() - start)
                start = time.perf_counter()
                scores = vectors @ probe
                exact = np.argpartition(-scores, top - 1)[:top]
                exact_latencies.append(time.perf_counter() - start)
                truth = {str(index) for index in exact.tolist()}
                overlaps.append(len(truth & set(found["ids"][0])) / top)
            results.append(
                {
                    "vectors": size,
                    "build_seconds": round(build_seconds, 3),
                    "p50_ms": float(np.percentile(latencies, 50) * 1e3),
                    "p95_ms": float(np.percentile(latencies, 95) * 1e3),
                    "exact_p50_ms": float(np.percentile(exact_latencies, 50) * 1e3),
                    f"recall@{k}": float(np.mean(overlaps)),
                }
            )
            del client, collection
    return {
        "dim": dim,
        "queries": queries,
        "k": k,
        "ef_search": ef_search or "default",
        "distribution": distribution,
        "results": results,
    }


# --- indexing on Ray ---------------------------------------------------------------------------


def cpu_model() -> str:
    """The processor's model name, from /proc/cpuinfo where there is one."""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """CPU model, logical CPU count and GPUs of this machine, for a benchmark's heading."""
    model = cpu_model()
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return f"{model}, {os.cpu_count()} logical CPUs, " + (", ".join(gpus) or "no GPU")


def bench_index(
    model: str,
    texts: Sequence[str],
    *,
    url: str,
    workers: Sequence[int] = (1, 2),
    small: int = 5,
    num_gpus: float = 0,
    repeats: int = 1,
) -> dict[str, Any]:
    """docs/s of local ``ingest`` and of ``index_with_ray`` per worker count, end to end.

    Each text becomes one ``.txt`` file; every run indexes them into a fresh collection on the
    Chroma server at ``url`` and includes loading the model (the local run clears the shared
    model cache first; Ray starts new actors every run). The first ``small`` files, indexed
    locally and with one Ray worker, show Ray's fixed cost per run. Needs a connected Ray
    (see :func:`youtu_rag.ingest.distributed.ray_cluster`). Rounds run interleaved; each method
    keeps its fastest.
    """
    if not 1 <= small < len(texts):
        raise ValueError(f"small must be between 1 and {len(texts) - 1}, got {small}")
    from youtu_rag.index.store import ChromaStore, connect
    from youtu_rag.ingest.distributed import index_with_ray
    from youtu_rag.ingest.pipeline import IngestReport, ingest
    from youtu_rag.model.loading import clear_backbone_cache

    client = connect(url=url)

    def timed(run: Callable[[str], IngestReport]) -> tuple[float, int]:
        name = f"bench-index-{uuid.uuid4().hex[:12]}"
        start = time.perf_counter()
        try:
            report = run(name)
            return time.perf_counter() - start, report.total_chunks
        finally:
            client.delete_collection(name)

    def local(folder: Path) -> Callable[[str], IngestReport]:
        def run(name: str) -> IngestReport:
            clear_backbone_cache()
            return ingest(ChromaStore(YoutuEmbedder(model), client, name), [folder])

        return run

    def on_ray(folder: Path, count: int) -> Callable[[str], IngestReport]:
        def run(name: str) -> IngestReport:
            return index_with_ray(
                [folder],
                url=url,
                collection=name,
                model=model,
                concurrency=count,
                num_gpus=num_gpus,
            )

        return run

    with tempfile.TemporaryDirectory(prefix="youtu_rag_bench_") as tmp:
        corpus, head = Path(tmp) / "corpus", Path(tmp) / "small"
        corpus.mkdir()
        head.mkdir()
        for number, text in enumerate(texts):
            name = f"doc{number:06}.txt"
            (corpus / name).write_text(text, encoding="utf-8")
            if number < small:
                (head / name).write_text(text, encoding="utf-8")
        local_small = f"local ingest, {small} files"
        # method -> (files, run, the local method it is compared with)
        methods: dict[str, tuple[int, Callable[[str], IngestReport], str]] = {
            "local ingest": (len(texts), local(corpus), "local ingest"),
            **{
                f"Ray, {n} worker{'s' * (n > 1)}": (len(texts), on_ray(corpus, n), "local ingest")
                for n in workers
            },
            local_small: (small, local(head), local_small),
            f"Ray, 1 worker, {small} files": (small, on_ray(head, 1), local_small),
        }
        best: dict[str, float] = {}
        chunks: dict[str, int] = {}
        for _ in range(repeats):
            for method, (_, run, _) in methods.items():
                seconds, chunks[method] = timed(run)
                best[method] = min(seconds, best.get(method, seconds))
    full = {chunks[method] for method, (count, _, _) in methods.items() if count == len(texts)}
    if len(full) != 1:
        raise RuntimeError(f"the runs indexed different numbers of chunks: {chunks}")
    return {
        "model": model,
        "machine": machine_description(),
        "documents": len(texts),
        "runs": [
            {
                "method": method,
                "files": count,
                "chunks": chunks[method],
                "seconds": best[method],
                "docs_per_s": count / best[method],
                "vs_local": best[baseline] / best[method],
            }
            for method, (count, _, baseline) in methods.items()
        ],
        "ray_fixed_cost_s": best[f"Ray, 1 worker, {small} files"] - best[local_small],
    }
