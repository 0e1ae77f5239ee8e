"""Commands that measure: ``eval``, ``verify`` and the ``bench`` group."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from youtu_rag.cli.app import TerminalConsole, app, console, err_console, handle_errors
from youtu_rag.cli.collection import ray_cluster
from youtu_rag.cli.options import (
    DEFAULT_MODEL,
    BatchSizeOption,
    BeirOption,
    DeviceOption,
    EvalJsonOption,
    JsonOption,
    ModelOption,
    ModelOptions,
    model_or_default,
)
from youtu_rag.cli.resources import check_model_path, model_not_found
from youtu_rag.model.defaults import DEFAULT_BATCH_SIZE

RepeatsOption = Annotated[
    int, typer.Option("--repeats", min=1, help="Rounds; each method keeps its fastest.")
]

bench_app = typer.Typer(
    help="Throughput and latency benchmarks.", no_args_is_help=True, pretty_exceptions_enable=False
)
app.add_typer(bench_app, name="bench")


def _print_rows(title: str, rows: list[dict[str, Any]]) -> None:
    """A rich table with one column per key of the first row; piped or redirected, as wide as
    its rows need (not wrapped at the 80 columns rich assumes without a terminal)."""
    from rich.measure import Measurement
    from rich.table import Table

    console.print(title)
    table = Table()
    for key in rows[0]:
        table.add_column(key, justify="left" if key in ("metric", "method", "step") else "right")
    for row in rows:
        table.add_row(
            *(f"{value:.4g}" if isinstance(value, float) else str(value) for value in row.values())
        )
    if console.is_terminal:
        console.print(table)
        return
    # rich caps a print's width at its console's (80 columns without a terminal).
    unbounded = console.options.update_width(1_000_000)
    width = max(console.width, Measurement.get(console, unbounded, table).maximum)
    TerminalConsole(markup=False, highlight=False, emoji=False, width=width).print(table)


@app.command()
@handle_errors
def verify(
    model: ModelOption = DEFAULT_MODEL,
    device: DeviceOption = None,
    dtype: Annotated[
        str,
        typer.Option(
            "--dtype",
            help="float32, float16 or bfloat16; the published scores are float32.",
        ),
    ] = "float32",
    as_json: JsonOption = False,
) -> None:
    """Embed the publisher's weather example and compare the scores with the published ones.

    Exit 0 on PASS (every score within 2e-3), 1 otherwise. Run it first after downloading a model.
    """
    from youtu_rag.backends.protocol import is_remote
    from youtu_rag.measure.verify import TOLERANCE, WEATHER_DOCUMENTS, WEATHER_QUERY
    from youtu_rag.measure.verify import verify as run_verify

    model = model_or_default(model)
    if is_remote(model):
        raise ValueError(f"verify checks a model loaded here, not an API: {model}")
    check_model_path(model)
    with model_not_found(model):
        result = run_verify(model, device=device, dtype=dtype)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        raise typer.Exit(0 if result.passed else 1)
    attention = f" (attention {result.attention})" if result.attention else ""
    lines = [
        f"model: {result.model}{attention}",
        f"reference: {result.reference or 'none published for this model'}",
        f"query: {WEATHER_QUERY!r}",
    ]
    expected: list[float | None] = [*result.expected] if result.expected else [None] * 3
    for document, score, wanted in zip(WEATHER_DOCUMENTS, result.scores, expected, strict=True):
        shown = "" if wanted is None else f"  expected {wanted:.8f}  diff {abs(score - wanted):.2e}"
        lines.append(f"  {score:.8f}{shown}  {document!r}")
    if result.max_difference is not None:
        lines.append(f"largest difference: {result.max_difference:.2e} (tolerance {TOLERANCE:g})")
    if result.other_scores is not None:
        scores = ", ".join(f"{score:.8f}" for score in result.other_scores)
        lines.append(f"with {result.other_attention} attention: {scores}")
        if result.other_max_difference is not None:
            lines.append(f"  largest difference: {result.other_max_difference:.2e}")
    lines.append("PASS" if result.passed else "FAIL")
    console.print("\n".join(lines))
    raise typer.Exit(0 if result.passed else 1)


@app.command("eval")
@handle_errors
def eval_command(
    beir: BeirOption,
    batch_size: BatchSizeOption = DEFAULT_BATCH_SIZE,
    query_instruction: Annotated[
        str | None,
        typer.Option(
            "--query-instruction",
            help="Query task text or a C-MTEB preset name (default: the model's; '' for none).",
        ),
    ] = None,
    via_chroma: Annotated[
        bool,
        typer.Option(
            "--via-chroma", help="Search through a Chroma HNSW index; report its cost in recall."
        ),
    ] = False,
    split: Annotated[str, typer.Option("--split", help="Which qrels/SPLIT.tsv to score.")] = "test",
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            min=1,
            help="Only the first N judged queries (qrels order), the documents judged for them "
            "and the first 100*N other documents (corpus order) as distractors: a quick check; "
            "scores are higher than on the whole corpus.",
        ),
    ] = None,
    modes: Annotated[
        list[str] | None,
        typer.Option(
            "--mode",
            help="dense (default), lexical (BM25), hybrid (both fused) or all; repeat to score "
            "several in one run (the corpus is embedded once).",
        ),
    ] = None,
    rerank: Annotated[
        str | None,
        typer.Option(
            "--rerank",
            help="A cross-encoder (or tencent-cloud:lke-reranker-base): each mode is scored "
            "again with its --candidates best reordered by it.",
        ),
    ] = None,
    candidates: Annotated[
        int, typer.Option("--candidates", min=1, help="First-stage documents reranked per query.")
    ] = 20,
    as_json: EvalJsonOption = False,
    *,
    model_options: ModelOptions,
) -> None:
    """nDCG@10, Recall@100 and MRR@10 on a BEIR dataset, computed as MTEB computes them."""
    from youtu_rag.backends.protocol import create_embedder
    from youtu_rag.index.fusion import check_mode
    from youtu_rag.measure.evaluation import evaluate, limit_queries, load_beir

    asked = modes or ["dense"]
    wanted = list(
        dict.fromkeys(
            mode
            for name in asked
            for mode in (("dense", "lexical", "hybrid") if name == "all" else (name,))
        )
    )
    for mode in wanted:
        check_mode(mode)
    if via_chroma and wanted != ["dense"]:
        raise ValueError(f"--via-chroma measures the dense search only, not {', '.join(wanted)}")
    dataset = load_beir(beir, split)  # a malformed folder fails before the model loads
    if limit is not None:
        dataset = limit_queries(dataset, limit)
    if wanted != ["dense"] or rerank is not None:
        reranker = None
        if rerank is not None:
            from youtu_rag.cli.resources import load_reranker

            reranker = load_reranker(rerank, model_options)
        _eval_modes(
            wanted,
            dataset,
            beir,
            model_options,
            batch_size,
            query_instruction,
            as_json,
            reranker=reranker,
            candidates=candidates,
        )
        return
    embedder = create_embedder(
        model_or_default(model_options.model),
        device=model_options.device,
        dtype=model_options.dtype,
        batch_size=batch_size,
        query_instruction=query_instruction,
        show_progress=True,
    )
    result = evaluate(embedder, dataset, via_chroma=via_chroma)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    _print_rows(
        f"{embedder.model_name} on {beir} ({result['queries']} queries, "
        f"{result['documents']} documents"
        f"{', --limit subset' if limit is not None else ''}, {result['seconds']:.1f}s)",
        [
            {"metric": name, "value": value}
            for name, value in result.items()
            if name not in ("queries", "documents", "seconds")
        ],
    )


def _eval_modes(
    modes: list[str],
    dataset: Any,
    beir: Any,
    model_options: ModelOptions,
    batch_size: int,
    query_instruction: str | None,
    as_json: bool,
    *,
    reranker: Any = None,
    candidates: int = 20,
) -> None:
    from youtu_rag.backends.protocol import create_embedder
    from youtu_rag.measure.evaluation import evaluate_modes

    embedder = None
    if modes != ["lexical"]:
        embedder = create_embedder(
            model_or_default(model_options.model),
            device=model_options.device,
            dtype=model_options.dtype,
            batch_size=batch_size,
            query_instruction=query_instruction,
            show_progress=True,
        )
    result = evaluate_modes(embedder, dataset, modes, reranker=reranker, candidates=candidates)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    scores: dict[str, dict[str, float]] = result["modes"]  # type: ignore[assignment]
    metrics = list(next(iter(scores.values())))
    model = "BM25" if embedder is None else embedder.model_name
    _print_rows(
        f"{model} on {beir} ({result['queries']} queries, {result['documents']} documents, "
        f"{result['seconds']:.1f}s)",
        [{"metric": name, **{mode: scores[mode][name] for mode in scores}} for name in metrics],
    )


@bench_app.command("encode")
@handle_errors
def bench_encode_command(
    beir: BeirOption,
    model: ModelOption = DEFAULT_MODEL,
    random_utu_layers: Annotated[
        int | None,
        typer.Option(
            "--random-utu-layers",
            min=1,
            help="Instead of --model: a random utu model of the published width (hidden 2048, "
            "32 heads of 64, vocab 128256) with this many layers, built in a temp dir.",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="Documents to embed (the first N of the corpus).")
    ] = 600,
    batch_size: BatchSizeOption = DEFAULT_BATCH_SIZE,
    repeats: RepeatsOption = 1,
    threads: Annotated[
        int | None, typer.Option("--threads", min=1, help="torch threads (default: torch's).")
    ] = None,
    max_length: Annotated[
        int | None,
        typer.Option(
            "--max-length",
            min=1,
            help="One truncation for all methods (default: each its own; the seed's is 1024).",
        ),
    ] = None,
    device: DeviceOption = None,
    as_json: EvalJsonOption = False,
) -> None:
    """docs/s, tokens/s and TFLOP/s of youtu-rag (fp32, bf16), sentence-transformers (where it
    can load the model) and the published inference script, on the same texts in one run."""
    import tempfile

    import torch

    from youtu_rag.backends.protocol import is_remote
    from youtu_rag.measure.bench import bench_encode, load_bench_texts
    from youtu_rag.model.random_checkpoint import UtuShape, build_random_utu

    model = model_or_default(model)
    if is_remote(model):
        raise ValueError(f"bench encode times local inference; {model} runs in the cloud")
    if threads is not None:
        torch.set_num_threads(threads)
    texts = load_bench_texts(beir, limit)
    with tempfile.TemporaryDirectory(prefix="youtu_rag_random_utu_") as scratch:
        if random_utu_layers is not None:
            model = str(build_random_utu(scratch, UtuShape(num_hidden_layers=random_utu_layers)))
        result = bench_encode(
            model,
            texts,
            batch_size=batch_size,
            repeats=repeats,
            device=device,
            max_length=max_length,
        )
    if random_utu_layers is not None:
        result["model"] = f"random utu of the published width, {random_utu_layers} of 32 layers"
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    baseline = "sentence_transformers_fp32" if result["st_max_length"] else "youtu_rag_fp32"
    base = result["methods"][baseline]["docs_per_s"]
    cpu = (
        f"; {result['cpu']} ({result['cpu_capability']}, bf16 matmul "
        f"{'native' if result['cpu_native_bf16'] else 'emulated: expect bf16 slower than fp32'})"
        if "cpu" in result
        else ""
    )
    _print_rows(
        f"{result['model']}: {result['documents']} documents, batch {result['batch_size']}, "
        f"{result['threads']} threads on {result['device']}{cpu}; matmul peak "
        f"{result['peak_tflops_fp32'] * 1e3:.1f} GFLOP/s fp32, "
        f"{result['peak_tflops_bf16'] * 1e3:.1f} GFLOP/s bf16",
        [
            {
                "method": name,
                "docs/s": row["docs_per_s"],
                "tokens/s": row["tokens_per_s"],
                "GFLOP/s": row["tflops"] * 1e3,
                "of peak": f"{row['peak_fraction']:.0%}",
                f"vs {baseline}": f"{row['docs_per_s'] / base:.2f}x",
            }
            for name, row in result["methods"].items()
        ],
    )


@bench_app.command("serve")
@handle_errors
def bench_serve_command(
    beir: BeirOption,
    requests: Annotated[
        int, typer.Option("--requests", min=1, help="Requests per run (each client count).")
    ] = 256,
    texts_per_request: Annotated[
        int, typer.Option("--texts-per-request", min=1, help="Texts in each request.")
    ] = 1,
    input_type: Annotated[
        str,
        typer.Option("--input-type", help="query (the BEIR queries) or document (the corpus)."),
    ] = "query",
    clients: Annotated[
        list[int] | None,
        typer.Option("--clients", min=1, help="Concurrent clients; repeat (default: 1, 8, 32)."),
    ] = None,
    repeats: Annotated[
        int, typer.Option("--repeats", min=1, help="Rounds; each run keeps its fastest.")
    ] = 2,
    threads: Annotated[
        int | None, typer.Option("--threads", min=1, help="torch threads, here and in servers.")
    ] = None,
    batch_size: BatchSizeOption = DEFAULT_BATCH_SIZE,
    max_wait_ms: Annotated[
        float, typer.Option("--max-wait-ms", min=0, help="The batching server's wait.")
    ] = 2.0,
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario",
            help="throughput (the server against the model in process, by client count), "
            "fairness (one-word requests idle and while one large request runs) or all.",
        ),
    ] = "all",
    big_texts: Annotated[
        int, typer.Option("--big-texts", min=1, help="fairness: documents in the large request.")
    ] = 256,
    big_characters: Annotated[
        int,
        typer.Option("--big-characters", min=1, help="fairness: characters per document."),
    ] = 900,
    as_json: EvalJsonOption = False,
    *,
    model_options: ModelOptions,
) -> None:
    """texts/s, tokens/s and p50/p99 latency of a youtu-rag server (with and without dynamic
    batching) against the same model in process, with 1, 8 and 32 concurrent clients; and how
    long a one-word request waits while one large request is embedded."""
    from youtu_rag.measure.bench_serve import bench_serve, load_requests

    if input_type not in ("query", "document"):
        raise ValueError(f"--input-type must be query or document, got {input_type!r}")
    if scenario not in ("all", "throughput", "fairness"):
        raise ValueError(f"--scenario must be throughput, fairness or all, got {scenario!r}")
    model = model_or_default(model_options.model)
    result: dict[str, Any] = {}
    if scenario != "fairness":
        result = bench_serve(
            model,
            load_requests(beir, input_type, requests, texts_per_request),
            input_type=input_type,
            clients=tuple(clients or (1, 8, 32)),
            repeats=repeats,
            threads=threads,
            device=model_options.device,
            dtype=model_options.dtype,
            batch_size=batch_size,
            max_wait_ms=max_wait_ms,
            progress=None if as_json else err_console.print,
        )
    if scenario != "throughput":
        result["fairness"] = _fairness(
            model, beir, big_texts, big_characters, threads, batch_size, max_wait_ms, model_options
        )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    if "server" in result:
        _print_throughput(result)
    if "fairness" in result:
        _print_fairness(result["fairness"])


def _fairness(
    model: str,
    beir: Path,
    texts: int,
    characters: int,
    threads: int | None,
    batch_size: int,
    max_wait_ms: float,
    model_options: ModelOptions,
) -> dict[str, Any]:
    import torch

    from youtu_rag.measure.bench_fairness import bench_fairness
    from youtu_rag.measure.bench_serve import machine, serve_options
    from youtu_rag.measure.evaluation import load_beir

    if threads is not None:
        torch.set_num_threads(threads)
    options = serve_options(
        torch.get_num_threads(), batch_size, max_wait_ms, model_options.device, model_options.dtype
    )
    report = bench_fairness(
        model,
        list(load_beir(beir).corpus.values()),
        texts=texts,
        characters=characters,
        server_options=tuple(options),
    )
    return {**report, "machine": machine()}


def _print_fairness(report: dict[str, Any]) -> None:
    big = report["big_request"]
    cpu = report["machine"]
    during = report["probe_p50_during_ms"]
    console.print(
        f"Fairness ({cpu['cpu']}, {cpu['logical_cpus']} logical CPUs): one-word requests, p50 "
        f"{report['probe_p50_idle_ms']:.1f} ms idle, "
        + ("n/a" if during is None else f"{during:.1f} ms")
        + f" (max {report['probe_max_during_ms'] or 0:.1f} ms, {report['probes_during']} "
        f"requests) while a request of {big['texts']} x {big['characters']}-character "
        f"documents runs ({report['big_request_forward_passes']:.0f} forward passes of "
        f"{report['big_request_batch_ms']:.1f} ms). Goal <= 3 x idle + one batch = "
        f"{report['goal_ms']:.1f} ms: {'met' if report['meets_goal'] else 'NOT met'}. The large "
        f"request took {report['big_request_with_probes_s']:.2f} s with the probes, "
        f"{report['big_request_alone_s']:.2f} s alone; its vectors "
        + ("in order" if report["big_in_order"] else "OUT OF ORDER")
        + f", max |diff| to in process {report['big_vectors_max_abs_diff']:.1e}."
    )


def _print_throughput(result: dict[str, Any]) -> None:
    labels = {
        "one_request_at_a_time": "in process, sequential",
        "all_texts_in_one_call": "in process, one call",
        "dynamic_batching": "serve, batching",
        "one_request_per_forward": "serve, 1 request/forward",
    }
    rows: list[dict[str, Any]] = []
    for name, row in result["in_process"].items():
        rows.append({"method": labels[name], "clients": 1, **row})
    for mode, by_clients in result["server"].items():
        for count, row in by_clients.items():
            rows.append({"method": labels[mode], "clients": count, **row})
    cpu = result["machine"]
    _print_rows(
        f"{result['model']} on {result['device']} ({cpu['cpu']}, {cpu['logical_cpus']} logical "
        f"CPUs, {result['threads']} torch threads): {result['requests']} requests of "
        f"{result['texts_per_request']} {result['input_type']} text(s); batching gain "
        + ", ".join(
            f"{gain:.2f}x at {count} clients" for count, gain in result["batching_gain"].items()
        ),
        [
            {
                "method": row["method"],
                "clients": row["clients"],
                "texts/s": row["texts_per_s"],
                "tokens/s": row["tokens_per_s"],
                "p50 ms": row["p50_ms"],
                "p99 ms": row["p99_ms"],
                "texts/forward": ""
                if row["texts_per_forward"] is None
                else row["texts_per_forward"],
                "vs in process": f"{row['vs_in_process']:.2f}x",
            }
            for row in rows
        ],
    )


@bench_app.command("retrieval")
@handle_errors
def bench_retrieval_command(
    size: Annotated[
        list[int] | None,
        typer.Option(
            "--size", min=1, help="Collection size; repeat for several (default: 10k, 100k)."
        ),
    ] = None,
    dim: Annotated[int, typer.Option("--dim", min=2, help="Vector dimension.")] = 384,
    queries: Annotated[int, typer.Option("--queries", min=1, help="Queries timed per size.")] = 200,
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="Results per query.")] = 10,
    ef_search: Annotated[
        int | None,
        typer.Option("--ef-search", min=1, help="HNSW candidates per query (default: Chroma's)."),
    ] = None,
    clustered: Annotated[
        bool,
        typer.Option(
            "--clustered",
            help="Vectors around size/100 random centres, like real embeddings (default: "
            "uniform on the sphere, HNSW's worst case).",
        ),
    ] = False,
    as_json: EvalJsonOption = False,
) -> None:
    """Query latency p50/p95 and HNSW recall@k against exact search in embedded Chroma."""
    from youtu_rag.measure.bench import bench_retrieval

    result = bench_retrieval(
        size or [10_000, 100_000],
        dim=dim,
        queries=queries,
        k=k,
        ef_search=ef_search,
        distribution="clustered" if clustered else "uniform",
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    _print_rows(
        f"Embedded Chroma, {dim}-d {result['distribution']} unit vectors, {queries} single "
        f"queries, top {k}, "
        f"ef_search {result['ef_search']}",
        result["results"],
    )


@bench_app.command("lexical")
@handle_errors
def bench_lexical_command(
    beir: Annotated[
        Path | None,
        typer.Option(
            "--beir",
            help="BEIR-format folder whose corpus and queries to time (e.g. SciFact).",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    size: Annotated[
        list[int] | None,
        typer.Option("--size", min=1, help="Synthetic collection size; repeat (default 100k)."),
    ] = None,
    queries: Annotated[int, typer.Option("--queries", min=1, help="Queries timed per mode.")] = 200,
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="Results per query.")] = 10,
    as_json: EvalJsonOption = False,
    *,
    model_options: ModelOptions,
) -> None:
    """Lexical index build rate and size; p50/p95 latency of dense, lexical and hybrid search."""
    from youtu_rag.cli.resources import load_embedder
    from youtu_rag.measure.bench_lexical import bench_lexical

    result = bench_lexical(
        load_embedder(model_or_default(model_options.model), model_options),
        beir=beir,
        sizes=size or [100_000],
        queries=queries,
        k=k,
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    _print_rows(
        f"{result['model']} (queries embedded; random vectors stored), {queries} single "
        f"queries per mode, top {k}",
        [
            {"metric": key, **{str(row["corpus"]): row[key] for row in result["results"]}}
            for key in result["results"][0]
            if key != "corpus"
        ],
    )


@bench_app.command("index")
@handle_errors
def bench_index_command(
    beir: BeirOption,
    url: Annotated[
        str, typer.Option("--url", help="Chroma server every run writes to (fresh collections).")
    ],
    model: ModelOption = DEFAULT_MODEL,
    limit: Annotated[
        int, typer.Option("--limit", min=2, help="Documents, one file each (the first N).")
    ] = 600,
    workers: Annotated[
        list[int] | None,
        typer.Option("--ray-workers", min=1, help="Ray worker counts to time (default: 1, 2)."),
    ] = None,
    small: Annotated[
        int, typer.Option("--small", min=1, help="Files of the small corpus (Ray's fixed cost).")
    ] = 5,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Cluster to join (default: a local one).")
    ] = None,
    gpus: Annotated[
        float, typer.Option("--ray-gpus-per-worker", min=0, help="GPUs per Ray worker.")
    ] = 0,
    repeats: RepeatsOption = 1,
    as_json: EvalJsonOption = False,
) -> None:
    """docs/s indexing files locally and on Ray with 1, 2, ... workers, and Ray's fixed cost."""
    import time

    from youtu_rag.measure.bench import bench_index, load_bench_texts

    model = model_or_default(model)
    texts = load_bench_texts(beir, limit)
    start = time.perf_counter()
    with ray_cluster(ray_address):
        ray_start = time.perf_counter() - start
        result = bench_index(
            model,
            texts,
            url=url,
            workers=workers or [1, 2],
            small=small,
            num_gpus=gpus,
            repeats=repeats,
        )
    result["ray_start_s"] = ray_start
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    _print_rows(
        f"{result['model']}: indexing {result['documents']} files into a Chroma server on "
        f"{result['machine']}; Ray start {ray_start:.1f}s, Ray's fixed cost per run "
        f"{result['ray_fixed_cost_s']:.1f}s",
        [
            {
                "method": row["method"],
                "files": row["files"],
                "chunks": row["chunks"],
                "seconds": row["seconds"],
                "docs/s": row["docs_per_s"],
                "vs local": f"{row['vs_local']:.2f}x",
            }
            for row in result["runs"]
        ],
    )


@bench_app.command("rerank")
@handle_errors
def bench_rerank_command(
    beir: BeirOption,
    reranker: Annotated[
        str, typer.Option("--reranker", help="A cross-encoder checkpoint (hub id or folder).")
    ],
    queries: Annotated[int, typer.Option("--queries", min=1, help="Queries.")] = 8,
    candidates: Annotated[
        int, typer.Option("--candidates", min=1, help="Documents per query.")
    ] = 20,
    batch_size: BatchSizeOption = DEFAULT_BATCH_SIZE,
    repeats: RepeatsOption = 3,
    device: DeviceOption = None,
    as_json: EvalJsonOption = False,
) -> None:
    """Query-document pairs per second against sentence-transformers' CrossEncoder."""
    from youtu_rag.measure.bench_rerank import bench_rerank

    check_model_path(reranker)
    result = bench_rerank(
        reranker,
        beir,
        queries=queries,
        candidates=candidates,
        batch_size=batch_size,
        repeats=repeats,
        device=device,
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    cpu = result["machine"]
    _print_rows(
        f"{result['model']} on {result['device']} ({cpu['cpu']}, {cpu['logical_cpus']} logical "
        f"CPUs): {result['pairs']} pairs, best of {repeats}; scores differ by at most "
        f"{result['max_abs_diff']:.1e}",
        [
            {
                "method": name,
                "pairs/s": rate,
                "vs CrossEncoder": f"{rate / rates['cross_encoder']:.2f}x",
            }
            for rates in [result["pairs_per_s"]]
            for name, rate in rates.items()
        ],
    )


@bench_app.command("ingest")
@handle_errors
def bench_ingest_command(
    folder: Annotated[
        Path, typer.Argument(help="A folder of documents to read.", exists=True, file_okay=False)
    ],
    model: ModelOption = DEFAULT_MODEL,
    ocr: Annotated[str, typer.Option("--ocr", help="auto, always or never (as index).")] = "auto",
    as_json: EvalJsonOption = False,
) -> None:
    """Files, pages (slides, sheets) and MB per second per format, and OCR seconds per page:
    reading and chunking as index does, without embedding."""
    from youtu_rag.cli.options import ModelOptions
    from youtu_rag.cli.resources import load_embedder
    from youtu_rag.measure.bench_ingest import bench_ingest

    if ocr not in ("auto", "always", "never"):
        raise ValueError(f"--ocr must be auto, always or never, got {ocr!r}")
    chosen = model_or_default(model)
    embedder = load_embedder(chosen, ModelOptions(model=chosen, device="cpu"))
    result = bench_ingest(embedder, folder, ocr)  # type: ignore[arg-type]
    if as_json:
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    cpu = result["machine"]
    per_page = result["ocr_seconds_per_page"]
    _print_rows(
        f"Reading {result['folder']} ({cpu['cpu']}, {cpu['logical_cpus']} logical CPUs); OCR "
        + (
            f"{result['ocr_pages']} pages at {per_page:.2f} s a page"
            if per_page is not None
            else "read no page"
        ),
        [
            {
                "format": suffix,
                "files": row["files"],
                "units": row["units"],
                "seconds": row["seconds"],
                "units/s": row["units_per_s"],
                "MB/s": row["mb_per_s"],
                "chunks": row["chunks"],
                "skipped": row["skipped"],
            }
            for suffix, row in result["formats"].items()
        ],
    )


@bench_app.command("chunking")
@handle_errors
def bench_chunking_command(
    file: Annotated[
        Path, typer.Argument(help="A .txt, .md or .pdf file to chunk.", exists=True, dir_okay=False)
    ],
    model: ModelOption = DEFAULT_MODEL,
    chunk_size: Annotated[
        int | None, typer.Option("--chunk-size", help="Tokens per chunk (default as index).")
    ] = None,
    repeats: RepeatsOption = 3,
    as_json: EvalJsonOption = False,
) -> None:
    """Seconds to chunk FILE with the script-aware splitter and with the splitter before it."""
    from youtu_rag.cli.options import ModelOptions
    from youtu_rag.cli.resources import load_embedder
    from youtu_rag.measure.bench_chunking import bench_chunking

    chosen = model_or_default(model)
    embedder = load_embedder(chosen, ModelOptions(model=chosen, device="cpu"))
    result = bench_chunking(embedder, file, chunk_size=chunk_size, repeats=repeats)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    _print_rows(
        f"{result['model']}: chunking {result['file']} ({result['bytes']} bytes), best of "
        f"{repeats}",
        [
            {
                "splitter": row["splitter"],
                "chunks": row["chunks"],
                "seconds": row["seconds"],
                "peak MiB": row["peak_mib"],
                "vs before": f"{row['vs_before']:.2f}x",
            }
            for row in result["runs"]
        ],
    )


@bench_app.command("cli")
@handle_errors
def bench_cli_command(
    paths: Annotated[
        list[Path], typer.Argument(help="Files and folders to index, e.g. examples/sample_docs.")
    ],
    model: ModelOption = DEFAULT_MODEL,
    repeats: RepeatsOption = 3,
    queries: Annotated[
        int, typer.Option("--queries", min=1, help="Further queries given to the shell.")
    ] = 10,
    as_json: EvalJsonOption = False,
) -> None:
    """Seconds a user waits: --help, info, a first search, a search through a running serve
    (--server) and each further query of shell (goal: repeated search within 0.5 s)."""
    from youtu_rag.measure.bench_cli import bench_cli

    chosen = model_or_default(model)
    check_model_path(chosen)
    result = bench_cli(paths, chosen, repeats=repeats, queries=queries)
    if as_json:
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    cpu = result["machine"]
    verdict = "met" if result["goal_met"] else "NOT met"
    _print_rows(
        f"{result['model']} ({cpu['cpu']}, {cpu['logical_cpus']} logical CPUs): median of "
        f"{repeats}; repeated search goal {result['goal_s']} s {verdict}",
        [{"step": step, "seconds": seconds} for step, seconds in result["steps"].items()],
    )
