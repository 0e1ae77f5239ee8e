"""The ``youtu-rag`` command: index a folder into Chroma, search it, ask a chat model, evaluate.

Every command takes the same model and store options. Failures a user can cause (server down,
unknown collection, model mismatch, no network for the hub) end in one red line and exit 1,
never a traceback.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_type_hints

import typer
from rich.console import Console
from rich.markup import escape

from youtu_rag.embedder import DEFAULT_BATCH_SIZE
from youtu_rag.profiles import YOUTU_EMBEDDING
from youtu_rag.store import DEFAULT_COLLECTION, DEFAULT_PERSIST_DIR

if TYPE_CHECKING:
    from youtu_rag.embedder import YoutuEmbedder
    from youtu_rag.store import ChromaStore

app = typer.Typer(
    name="youtu-rag",
    help="Index documents with Youtu-Embedding into Chroma, search them and ask a chat model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
#: Everything printed to stdout is literal text: "[...]" in a passage or a path is not markup.
console = Console(markup=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

R = TypeVar("R")

ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="Hub id or local directory of the embedding model.")
]
DeviceOption = Annotated[
    str | None, typer.Option("--device", help="cuda, mps or cpu (default: the best available).")
]
DtypeOption = Annotated[
    str | None, typer.Option("--dtype", help="float32 or bfloat16 (default: bf16 on CUDA).")
]
DEFAULT_MODEL = YOUTU_EMBEDDING


@dataclass(frozen=True)
class StoreOptions:
    """Where the index lives: a database directory or a Chroma server, and a collection."""

    persist_dir: Annotated[
        str, typer.Option("--persist-dir", help="Directory of the embedded Chroma database.")
    ] = DEFAULT_PERSIST_DIR
    url: Annotated[
        str | None,
        typer.Option("--url", help="Chroma server, e.g. http://127.0.0.1:8000 (instead of a dir)."),
    ] = None
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection name.")] = (
        DEFAULT_COLLECTION
    )


@dataclass(frozen=True)
class ModelOptions:
    """Which embedding model, on which device, in which dtype."""

    model: ModelOption = DEFAULT_MODEL
    device: DeviceOption = None
    dtype: DtypeOption = None


_OPTION_GROUPS = (StoreOptions, ModelOptions)


def option_groups(command: Callable[..., R]) -> Callable[..., R]:
    """Let ``command`` take whole option groups, declared once for every command.

    Args:
        command: a function with ``StoreOptions`` / ``ModelOptions`` parameters.

    Returns:
        A function typer reads as taking each group's fields as options, and that calls
        ``command`` with the groups assembled.
    """
    hints = get_type_hints(command, include_extras=True)
    groups = {name: hint for name, hint in hints.items() if hint in _OPTION_GROUPS}
    parameters: list[inspect.Parameter] = []
    for parameter in inspect.signature(command).parameters.values():
        group = groups.get(parameter.name)
        fields = [(parameter.name, hints[parameter.name], parameter.default)]
        if group is not None:
            group_hints = get_type_hints(group, include_extras=True)
            fields = [(f.name, group_hints[f.name], f.default) for f in dataclasses.fields(group)]
        keyword = inspect.Parameter.KEYWORD_ONLY
        parameters += [
            inspect.Parameter(name, keyword, default=default, annotation=hint)
            for name, hint, default in fields
        ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> R:
        for name, group in groups.items():
            values = {f.name: kwargs.pop(f.name) for f in dataclasses.fields(group)}
            kwargs[name] = group(**values)
        return command(**kwargs)

    wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    return wrapper


def handle_errors(command: Callable[..., R]) -> Callable[..., R]:
    """Turn the errors a user can cause into one line on stderr and exit status 1.

    Args:
        command: a command function; its option groups are spread for typer
            (:func:`option_groups`).

    Returns:
        The command as typer should register it.
    """
    grouped = option_groups(command)

    @functools.wraps(grouped)
    def wrapper(*args: Any, **kwargs: Any) -> R:
        try:
            return grouped(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as error:  # the CLI's contract: one line, no traceback
            logging.getLogger(__name__).debug("command failed", exc_info=True)
            # Escaped: a message holding "[...]" is text, not rich markup.
            message = escape(str(error))
            err_console.print(f"[red]error:[/red] {message}")
            raise typer.Exit(1) from error

    return wrapper


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    """youtu-rag: Youtu-Embedding retrieval for RAG."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)


# --- index, search, ask, info ----------------------------------------------------------------

KOption = Annotated[int, typer.Option("-k", "--top-k", min=1, help="Passages to retrieve.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _load_embedder(options: ModelOptions) -> YoutuEmbedder:
    """The embedder, or one line saying why it cannot load (typically: offline, no local copy)."""
    from youtu_rag.embedder import YoutuEmbedder

    model = options.model
    if model.startswith(("/", ".", "~")) and not Path(model).expanduser().is_dir():
        raise FileNotFoundError(f"--model {model}: no such directory")
    try:
        return YoutuEmbedder(model, device=options.device, dtype=options.dtype)
    except OSError as error:
        raise RuntimeError(
            f"cannot load model {model!r}: {_one_line(error)} To work offline, pass --model "
            "with a local directory holding the model (config.json, weights, tokenizer)."
        ) from error


def _open_store(store: StoreOptions, model: ModelOptions, *, create: bool) -> ChromaStore:
    """Connect and check first: a wrong URL, an unknown collection or another model's index
    fails before a model loads."""
    from youtu_rag.profiles import get_profile
    from youtu_rag.store import ChromaStore, CollectionNotFoundError, check_model, describe

    client = _connect(store, create=create)
    try:
        check_model(describe(client, store.collection), get_profile(model.model).name)
    except CollectionNotFoundError:
        if not create:
            raise
    return ChromaStore(_load_embedder(model), client, store.collection, create=create)


def _connect(store: StoreOptions, *, create: bool) -> Any:
    from youtu_rag.store import connect

    return connect(None if store.url else store.persist_dir, store.url, create=create)


def _preview(text: str, width: int = 240) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _parse_where(where: str | None) -> dict[str, Any] | None:
    if where is None:
        return None
    try:
        parsed = json.loads(where)
    except json.JSONDecodeError as error:
        raise ValueError(f"--where is not valid JSON ({error})") from error
    if not isinstance(parsed, dict):
        raise ValueError('--where must be a JSON object, e.g. {"source": "/docs/a.md"}')
    return parsed


@app.command()
@handle_errors
def index(
    paths: Annotated[
        list[Path], typer.Argument(help="Files and folders to index (.txt, .md, .pdf).")
    ],
    chunk_size: Annotated[
        int | None,
        typer.Option("--chunk-size", help="Tokens per chunk (default: 512, or the model's limit)."),
    ] = None,
    chunk_overlap: Annotated[
        int | None,
        typer.Option(
            "--chunk-overlap", help="Tokens shared by neighbouring chunks (default: 1/8)."
        ),
    ] = None,
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove chunks of files under PATHS that are gone.")
    ] = False,
    *,
    store_options: StoreOptions,
    model_options: ModelOptions,
) -> None:
    """Chunk, embed and store files; re-runs write only what changed."""
    from youtu_rag.ingest import find_files, ingest

    find_files(paths)  # a mistyped path fails before the model loads
    store = _open_store(store_options, model_options, create=True)
    report = ingest(
        store,
        paths,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        prune=prune,
        show_progress=True,
    )
    pruned = f", {report.pruned_files} deleted files pruned" if prune else ""
    console.print(
        f"Indexed {report.files} files into {store_options.collection!r}: "
        f"{report.changed} new or changed, "
        f"{report.unchanged} unchanged, {report.empty} empty skipped{pruned}; "
        f"{report.chunks_written} chunks written, {report.chunks_deleted} removed; "
        f"{report.total_chunks} chunks in total.",
    )


@app.command()
@handle_errors
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: KOption = 4,
    where: Annotated[
        str | None,
        typer.Option("--where", help='Chroma metadata filter as JSON: \'{"source": "/a/b.md"}\''),
    ] = None,
    mmr: Annotated[bool, typer.Option("--mmr", help="Diversify results (MMR).")] = False,
    as_json: JsonOption = False,
    *,
    store_options: StoreOptions,
    model_options: ModelOptions,
) -> None:
    """The passages closest to QUERY, with cosine similarity scores and sources."""
    filters = _parse_where(where)
    store = _open_store(store_options, model_options, create=False)
    hits = store.search(query, k=k, where=filters, mmr=mmr)
    if as_json:
        typer.echo(json.dumps([hit.to_dict() for hit in hits], ensure_ascii=False, indent=2))
        return
    if not hits:
        err_console.print("no matching passages")
    for rank, hit in enumerate(hits, start=1):
        console.print(f"{rank}. {hit.score:.4f}  {hit.source}  #{hit.metadata.get('chunk', '?')}")
        console.print("   " + _preview(hit.text))


@app.command()
@handle_errors
def ask(
    question: Annotated[str, typer.Argument(help="The question to answer from the index.")],
    chat: Annotated[
        str | None,
        typer.Option(
            "--chat",
            help="PROVIDER:MODEL for LangChain's init_chat_model, e.g. openai:gpt-4o-mini.",
        ),
    ] = None,
    k: KOption = 4,
    *,
    store_options: StoreOptions,
    model_options: ModelOptions,
) -> None:
    """Answer QUESTION with a chat model from the retrieved passages, citing their sources.

    Without --chat, print the context a chat model would get.
    """
    from youtu_rag.rag import format_context, format_sources

    chat_model = None if chat is None else _chat_model(chat)
    store = _open_store(store_options, model_options, create=False)
    if chat_model is None:
        hits = store.search(question, k=k)
        console.print(format_context(hits))
        err_console.print(
            "No chat model configured: pass --chat PROVIDER:MODEL (e.g. openai:gpt-4o-mini) "
            "to get an answer.",
        )
        return

    from langchain_youtu import YoutuRetriever, create_rag_chain
    from langchain_youtu.chain import to_passages

    result = create_rag_chain(YoutuRetriever(store=store, k=k), chat_model).invoke(question)
    console.print(result["answer"])
    console.print("\nSources:")
    console.print(
        format_sources(to_passages(result["sources"])),
    )


def _chat_model(spec: str) -> Any:
    """LangChain's ``init_chat_model`` for ``PROVIDER:MODEL``, failing in one line."""
    provider, _, name = spec.partition(":")
    if not provider or not name:
        raise ValueError(f"--chat must be PROVIDER:MODEL, e.g. openai:gpt-4o-mini, got {spec!r}")
    try:
        from langchain.chat_models import init_chat_model
    except ImportError as error:
        raise RuntimeError("--chat needs LangChain: pip install 'youtu-rag[langchain]'") from error
    try:
        return init_chat_model(name, model_provider=provider)
    except Exception as error:
        raise RuntimeError(f"cannot start chat model {spec!r}: {_one_line(error)}") from error


@app.command()
@handle_errors
def info(as_json: JsonOption = False, *, store_options: StoreOptions) -> None:
    """What the collection holds and which model built it (loads no model)."""
    from youtu_rag.store import describe

    details = describe(_connect(store_options, create=False), store_options.collection)
    if as_json:
        typer.echo(json.dumps(details.to_dict(), ensure_ascii=False, indent=2))
        return
    for key, value in details.to_dict().items():
        shown = repr(value) if value == "" else value
        console.print(f"{key}: {shown}")


@app.command()
@handle_errors
def verify(
    model: ModelOption = DEFAULT_MODEL,
    device: DeviceOption = None,
    dtype: Annotated[
        str, typer.Option("--dtype", help="The published scores are float32.")
    ] = "float32",
    as_json: JsonOption = False,
) -> None:
    """Embed the publisher's weather example and compare the scores with the published ones.

    Exit 0 on PASS (every score within 2e-3), 1 otherwise. Run it first after downloading a model.
    """
    from youtu_rag.verify import TOLERANCE, WEATHER_DOCUMENTS, WEATHER_QUERY
    from youtu_rag.verify import verify as run_verify

    try:
        result = run_verify(model, device=device, dtype=dtype)
    except OSError as error:
        raise RuntimeError(f"cannot load model {model!r}: {_one_line(error)}") from error
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


# --- eval, bench -------------------------------------------------------------------------------

BeirOption = Annotated[
    Path,
    typer.Option(
        "--beir",
        help="BEIR-format folder: corpus.jsonl, queries.jsonl, qrels/test.tsv.",
        exists=True,
        file_okay=False,
    ),
]
BatchSizeOption = Annotated[
    int, typer.Option("--batch-size", min=1, help="Texts per forward pass.")
]
EvalJsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

bench_app = typer.Typer(
    help="Throughput and latency benchmarks.", no_args_is_help=True, pretty_exceptions_enable=False
)
app.add_typer(bench_app, name="bench")


def _print_rows(title: str, rows: list[dict[str, Any]]) -> None:
    """A rich table with one column per key of the first row."""
    from rich.table import Table

    console.print(title)
    table = Table()
    for key in rows[0]:
        table.add_column(key, justify="left" if key in ("metric", "method") else "right")
    for row in rows:
        table.add_row(
            *(f"{value:.4g}" if isinstance(value, float) else str(value) for value in row.values())
        )
    console.print(table)


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
    as_json: EvalJsonOption = False,
    *,
    model_options: ModelOptions,
) -> None:
    """nDCG@10, Recall@100 and MRR@10 on a BEIR dataset, computed as MTEB computes them."""
    from youtu_rag.embedder import YoutuEmbedder
    from youtu_rag.evaluation import evaluate, load_beir

    dataset = load_beir(beir, split)  # a malformed folder fails before the model loads
    embedder = YoutuEmbedder(
        model_options.model,
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
        f"{result['documents']} documents, {result['seconds']:.1f}s)",
        [
            {"metric": name, "value": value}
            for name, value in result.items()
            if name not in ("queries", "documents", "seconds")
        ],
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
    repeats: Annotated[
        int, typer.Option("--repeats", min=1, help="Rounds; each method keeps its fastest.")
    ] = 1,
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

    from youtu_rag.bench import bench_encode, load_bench_texts
    from youtu_rag.random_checkpoint import UtuShape, build_random_utu

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
    from youtu_rag.bench import bench_retrieval

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
