"""The ``youtu-rag`` command: index a folder into Chroma, search it, ask a chat model, evaluate.

Every command takes the same model and store options. Failures a user can cause (server down,
unknown collection, model mismatch, no network for the hub) end in one red line and exit 1,
never a traceback. ``index`` exits 3 when it had to skip files and 130 when stopped by Ctrl-C.
Text from documents, paths and messages is printed as it is: no rich markup, emoji codes or
highlighting is applied to it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from youtu_rag.profiles import YOUTU_EMBEDDING

if TYPE_CHECKING:
    from youtu_rag.embedder import YoutuEmbedder
    from youtu_rag.store import ChromaStore

app = typer.Typer(
    name="youtu-rag",
    help="Index documents with Youtu-Embedding into Chroma, search them and ask a chat model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# emoji=False: rich would otherwise turn ":x:" in a passage or a path into an emoji.
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)

P = ParamSpec("P")
R = TypeVar("R")

# Options shared by every command.
ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="Hub id or local directory of the embedding model.")
]
PersistDirOption = Annotated[
    str, typer.Option("--persist-dir", help="Directory of the embedded Chroma database.")
]
UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="Chroma server, e.g. http://127.0.0.1:8000 (instead of a dir)."),
]
CollectionOption = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]
DeviceOption = Annotated[
    str | None, typer.Option("--device", help="cuda, mps or cpu (default: the best available).")
]
DtypeOption = Annotated[
    str | None, typer.Option("--dtype", help="float32 or bfloat16 (default: bf16 on CUDA).")
]
DEFAULT_MODEL = YOUTU_EMBEDDING
DEFAULT_PERSIST_DIR = ".youtu_rag"
DEFAULT_COLLECTION = "youtu_rag"
#: Exit status of ``index`` when some files were skipped (the others are indexed).
EXIT_SKIPPED = 3
#: Exit status after Ctrl-C, as shells report a process ended by SIGINT.
EXIT_INTERRUPTED = 130


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the errors a user can cause into one line on stderr and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt as error:
            err_console.print("interrupted", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from error
        except Exception as error:  # the CLI's contract: one line, no traceback
            logging.getLogger(__name__).debug("command failed", exc_info=True)
            # Escaped: a message holding "[...]" is text, not rich markup.
            message = escape(str(error))
            err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from error

    return wrapper


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    """youtu-rag: Youtu-Embedding retrieval for RAG."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    if not verbose:
        # pypdf warns about each defect it recovers from or fails on; a file it cannot read is
        # reported once, as skipped, with the reason.
        logging.getLogger("pypdf").setLevel(logging.ERROR)


# --- index, search, ask, info ----------------------------------------------------------------

KOption = Annotated[int, typer.Option("-k", "--top-k", min=1, help="Passages to retrieve.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _load_embedder(model: str, device: str | None, dtype: str | None) -> YoutuEmbedder:
    """The embedder, or one line saying why it cannot load (typically: offline, no local copy)."""
    from youtu_rag.embedder import YoutuEmbedder

    if model.startswith(("/", ".", "~")) and not Path(model).expanduser().is_dir():
        raise FileNotFoundError(f"--model {model}: no such directory")
    try:
        return YoutuEmbedder(model, device=device, dtype=dtype)
    except OSError as error:
        raise RuntimeError(
            f"cannot load model {model!r}: {_one_line(error)} To work offline, pass --model "
            "with a local directory holding the model (config.json, weights, tokenizer)."
        ) from error


def _open_store(
    model: str,
    persist_dir: str,
    url: str | None,
    collection: str,
    device: str | None,
    dtype: str | None,
    *,
    create: bool,
) -> ChromaStore:
    """Connect and check first: a wrong URL, an unknown collection or another model's index
    fails before a model loads."""
    from youtu_rag.profiles import get_profile
    from youtu_rag.store import ChromaStore, CollectionNotFoundError, check_model, connect, describe

    client = connect(None if url else persist_dir, url, create=create)
    profile = get_profile(model)
    try:
        check_model(
            describe(client, collection),
            profile.name,
            trust_remote_code=profile.trust_remote_code,
        )
    except CollectionNotFoundError:
        if not create:
            raise
    return ChromaStore(_load_embedder(model, device, dtype), client, collection, create=create)


@contextlib.contextmanager
def _stop_on_ctrl_c() -> Iterator[threading.Event]:
    """An event the first Ctrl-C sets (the run stops after its current batch); a second Ctrl-C
    raises KeyboardInterrupt at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers can only be set from the main thread
        return

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        err_console.print(
            "Stopping after the current batch; press Ctrl-C again to stop at once.",
            highlight=False,
        )

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


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
    model: ModelOption = DEFAULT_MODEL,
    persist_dir: PersistDirOption = DEFAULT_PERSIST_DIR,
    url: UrlOption = None,
    collection: CollectionOption = DEFAULT_COLLECTION,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
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
) -> None:
    """Chunk, embed and store files; re-runs write only what changed.

    Files that cannot be read, decoded or parsed are skipped and listed (exit status 3); Ctrl-C
    stops after the current batch, keeping what was written (exit status 130).
    """
    from youtu_rag.ingest import find_files, ingest

    find_files(paths)  # a mistyped path fails before the model loads
    store = _open_store(model, persist_dir, url, collection, device, dtype, create=True)
    with _stop_on_ctrl_c() as stop:
        report = ingest(
            store,
            paths,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            prune=prune,
            show_progress=True,
            stop=stop,
        )
    for entry in report.skipped:
        err_console.print(
            f"skipped {entry.path}: {entry.reason}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if report.interrupted:
        console.print(
            f"Stopped by Ctrl-C: {report.chunks_written} chunks written, "
            f"{report.chunks_deleted} removed, {report.total_chunks} chunks in total. "
            "Run the same command again to continue.",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_INTERRUPTED)
    pruned = f", {report.pruned_files} deleted files pruned" if prune else ""
    skipped = f", {len(report.skipped)} skipped (listed above)" if report.skipped else ""
    console.print(
        f"Indexed {report.files} files into {collection!r}: {report.changed} new or changed, "
        f"{report.unchanged} unchanged, {report.empty} empty skipped{skipped}{pruned}; "
        f"{report.chunks_written} chunks written, {report.chunks_deleted} removed; "
        f"{report.total_chunks} chunks in total.",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    if report.skipped:
        raise typer.Exit(EXIT_SKIPPED)


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
    model: ModelOption = DEFAULT_MODEL,
    persist_dir: PersistDirOption = DEFAULT_PERSIST_DIR,
    url: UrlOption = None,
    collection: CollectionOption = DEFAULT_COLLECTION,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
) -> None:
    """The passages closest to QUERY, with cosine similarity scores and sources."""
    filters = _parse_where(where)
    store = _open_store(model, persist_dir, url, collection, device, dtype, create=False)
    hits = store.search(query, k=k, where=filters, mmr=mmr)
    if as_json:
        typer.echo(json.dumps([hit.to_dict() for hit in hits], ensure_ascii=False, indent=2))
        return
    if not hits:
        err_console.print("no matching passages")
    for rank, hit in enumerate(hits, start=1):
        console.print(
            f"{rank}. {hit.score:.4f}  {hit.source}  #{hit.metadata.get('chunk', '?')}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        console.print("   " + _preview(hit.text), markup=False, highlight=False, soft_wrap=True)


@app.command()
@handle_errors
def ask(
    question: Annotated[str, typer.Argument(help="The question to answer from the index.")],
    k: KOption = 4,
    chat: Annotated[
        str | None,
        typer.Option(
            "--chat",
            help="PROVIDER:MODEL for LangChain's init_chat_model, e.g. openai:gpt-4o-mini.",
        ),
    ] = None,
    model: ModelOption = DEFAULT_MODEL,
    persist_dir: PersistDirOption = DEFAULT_PERSIST_DIR,
    url: UrlOption = None,
    collection: CollectionOption = DEFAULT_COLLECTION,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
) -> None:
    """Answer QUESTION with a chat model from the retrieved passages, citing their sources.

    Without --chat, print the context a chat model would get.
    """
    from youtu_rag.rag import format_context, format_sources

    chat_model = None if chat is None else _chat_model(chat)
    store = _open_store(model, persist_dir, url, collection, device, dtype, create=False)
    if chat_model is None:
        hits = store.search(question, k=k)
        console.print(format_context(hits), markup=False, highlight=False, soft_wrap=True)
        err_console.print(
            "No chat model configured: pass --chat PROVIDER:MODEL (e.g. openai:gpt-4o-mini) "
            "to get an answer.",
            highlight=False,
            soft_wrap=True,
        )
        return

    from langchain_youtu import YoutuRetriever, create_rag_chain
    from langchain_youtu.chain import to_passages

    result = create_rag_chain(YoutuRetriever(store=store, k=k), chat_model).invoke(question)
    console.print(result["answer"], markup=False, highlight=False, soft_wrap=True)
    console.print("\nSources:", markup=False, highlight=False, soft_wrap=True)
    console.print(
        format_sources(to_passages(result["sources"])),
        markup=False,
        highlight=False,
        soft_wrap=True,
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
def info(
    as_json: JsonOption = False,
    model: ModelOption = DEFAULT_MODEL,
    persist_dir: PersistDirOption = DEFAULT_PERSIST_DIR,
    url: UrlOption = None,
    collection: CollectionOption = DEFAULT_COLLECTION,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
) -> None:
    """What the collection holds and which model built it (loads no model)."""
    from youtu_rag.store import connect, describe

    details = describe(connect(None if url else persist_dir, url, create=False), collection)
    if as_json:
        typer.echo(json.dumps(details.to_dict(), ensure_ascii=False, indent=2))
        return
    for key, value in details.to_dict().items():
        shown = repr(value) if value == "" else value
        console.print(f"{key}: {shown}", markup=False, highlight=False, soft_wrap=True)


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

    console.print(title, markup=False, highlight=False, soft_wrap=True)
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
    model: ModelOption = DEFAULT_MODEL,
    dtype: DtypeOption = None,
    device: DeviceOption = None,
    batch_size: BatchSizeOption = 32,
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
) -> None:
    """nDCG@10, Recall@100 and MRR@10 on a BEIR dataset, computed as MTEB computes them."""
    from youtu_rag.embedder import YoutuEmbedder
    from youtu_rag.evaluation import evaluate, load_beir

    dataset = load_beir(beir, split)  # a malformed folder fails before the model loads
    embedder = YoutuEmbedder(
        model,
        device=device,
        dtype=dtype,
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
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="Documents to embed (the first N of the corpus).")
    ] = 600,
    batch_size: BatchSizeOption = 32,
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
    """docs/s, tokens/s and TFLOP/s of youtu-rag (fp32, bf16), sentence-transformers and the
    published inference script, on the same texts in one run."""
    import torch

    from youtu_rag.bench import bench_encode, load_bench_texts

    if threads is not None:
        torch.set_num_threads(threads)
    texts = load_bench_texts(beir, limit)
    result = bench_encode(
        model, texts, batch_size=batch_size, repeats=repeats, device=device, max_length=max_length
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    st = result["methods"]["sentence_transformers_fp32"]["docs_per_s"]
    _print_rows(
        f"{result['model']}: {result['documents']} documents, batch {result['batch_size']}, "
        f"{result['threads']} threads on {result['device']}; matmul peak "
        f"{result['peak_tflops_fp32'] * 1e3:.1f} GFLOP/s fp32, "
        f"{result['peak_tflops_bf16'] * 1e3:.1f} GFLOP/s bf16",
        [
            {
                "method": name,
                "docs/s": row["docs_per_s"],
                "tokens/s": row["tokens_per_s"],
                "GFLOP/s": row["tflops"] * 1e3,
                "of peak": f"{row['peak_fraction']:.0%}",
                "vs ST": f"{row['docs_per_s'] / st:.2f}x",
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
