"""The ``youtu-rag`` command: index a folder into Chroma, search it, ask a chat model, evaluate.

Every command takes the same model and store options. Failures a user can cause (server down,
unknown collection, model mismatch, no network for the hub) end in one red line and exit 1,
never a traceback. ``index`` exits 3 when it had to skip files and 130 when stopped by Ctrl-C.
Text from documents, paths and messages is printed as it is: no rich markup, emoji codes or
highlighting is applied to it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_type_hints

import typer
from rich.console import Console
from rich.markup import escape

from youtu_rag.embedder import DEFAULT_BATCH_SIZE, DEFAULT_MAX_BATCH_TOKENS
from youtu_rag.profiles import YOUTU_EMBEDDING
from youtu_rag.store import DEFAULT_COLLECTION, DEFAULT_PERSIST_DIR

if TYPE_CHECKING:
    from youtu_rag.backends import Embedder
    from youtu_rag.ingest import IngestReport
    from youtu_rag.store import ChromaStore

app = typer.Typer(
    name="youtu-rag",
    help="Index documents with Youtu-Embedding into Chroma, search them and ask a chat model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
#: Everything printed is literal text: "[...]" in a passage or a path is not markup, and
#: ":x:" is not an emoji.
console = Console(markup=False, highlight=False, soft_wrap=True, emoji=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

R = TypeVar("R")

ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Hub id or local directory of the embedding model, or tencent-cloud:MODEL for "
        "the Tencent Cloud API (credentials from TENCENTCLOUD_SECRET_ID / _KEY).",
    ),
]
DeviceOption = Annotated[
    str | None, typer.Option("--device", help="cuda, mps or cpu (default: the best available).")
]
DtypeOption = Annotated[
    str | None, typer.Option("--dtype", help="float32 or bfloat16 (default: bf16 on CUDA).")
]
DEFAULT_MODEL = YOUTU_EMBEDDING
#: Exit status of ``index`` when some files were skipped (the others are indexed).
EXIT_SKIPPED = 3
#: Exit status after Ctrl-C, as shells report a process ended by SIGINT.
EXIT_INTERRUPTED = 130


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
        except KeyboardInterrupt as error:
            err_console.print("interrupted", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from error
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


def _check_model_path(model: str) -> None:
    """A --model that looks like a path must be a directory: fail before anything loads."""
    if model.startswith(("/", ".", "~")) and not Path(model).expanduser().is_dir():
        raise FileNotFoundError(f"--model {model}: no such directory")


def _load_embedder(options: ModelOptions) -> Embedder:
    """The embedder, or one line saying why it cannot load (typically: offline, no local copy)."""
    from youtu_rag.backends import create_embedder

    model = options.model
    _check_model_path(model)
    try:
        return create_embedder(model, device=options.device, dtype=options.dtype)
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
    profile = get_profile(model.model)
    try:
        check_model(
            describe(client, store.collection),
            profile.name,
            trust_remote_code=profile.trust_remote_code,
        )
    except CollectionNotFoundError:
        if not create:
            raise
    return ChromaStore(_load_embedder(model), client, store.collection, create=create)


def _connect(store: StoreOptions, *, create: bool) -> Any:
    from youtu_rag.store import connect

    return connect(None if store.url else store.persist_dir, store.url, create=create)


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
    chunk_size: Annotated[
        int | None,
        typer.Option(
            "--chunk-size",
            help="Tokens per chunk (default: 512, or the model's limit; for tencent-cloud: "
            "characters, default 2000).",
        ),
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
    ray: Annotated[
        bool,
        typer.Option("--ray", help="Chunk and embed on a Ray cluster, writing to --url's server."),
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="Cluster to join ('auto': the one on this machine; default: RAY_ADDRESS, "
            "else a new local one). Implies --ray.",
        ),
    ] = None,
    ray_workers: Annotated[
        int, typer.Option("--ray-workers", min=1, help="Model actors on Ray, one model each.")
    ] = 1,
    ray_gpus_per_worker: Annotated[
        float,
        typer.Option("--ray-gpus-per-worker", min=0, help="GPUs per actor (0: share the CPUs)."),
    ] = 0,
    *,
    store_options: StoreOptions,
    model_options: ModelOptions,
) -> None:
    """Chunk, embed and store files; re-runs write only what changed.

    Files that cannot be read, decoded or parsed are skipped and listed (exit status 3); Ctrl-C
    stops after the current batch, keeping what was written (exit status 130).
    """
    from youtu_rag.ingest import find_files, ingest

    if ray or ray_address is not None:
        from youtu_rag.backends import is_remote

        model = model_options.model
        if is_remote(model):
            raise ValueError(f"--ray runs a local model on each worker; {model} is an API model")
        report = _index_on_ray(
            paths,
            ray_address,
            url=store_options.url,
            collection=store_options.collection,
            model=model,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            prune=prune,
            concurrency=ray_workers,
            num_gpus=ray_gpus_per_worker,
            device=model_options.device,
            dtype=model_options.dtype,
        )
    else:
        find_files(paths)  # a mistyped path fails before the model loads
        store = _open_store(store_options, model_options, create=True)
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
        err_console.print(f"skipped {entry.path}: {entry.reason}", markup=False)
    if report.interrupted:
        console.print(
            f"Stopped by Ctrl-C: {report.chunks_written} chunks written, "
            f"{report.chunks_deleted} removed, {report.total_chunks} chunks in total. "
            "Run the same command again to continue."
        )
        raise typer.Exit(EXIT_INTERRUPTED)
    pruned = f", {report.pruned_files} deleted files pruned" if prune else ""
    skipped = f", {len(report.skipped)} skipped (listed above)" if report.skipped else ""
    console.print(
        f"Indexed {report.files} files into {store_options.collection!r}: "
        f"{report.changed} new or changed, "
        f"{report.unchanged} unchanged, {report.empty} empty skipped{skipped}{pruned}; "
        f"{report.chunks_written} chunks written, {report.chunks_deleted} removed; "
        f"{report.total_chunks} chunks in total.",
    )
    if report.skipped:
        raise typer.Exit(EXIT_SKIPPED)


def _ray_cluster(address: str | None) -> AbstractContextManager[None]:
    """Join or start a Ray cluster (extra ``ray``); Ray's own logs stay quiet without -v.

    Its errors still arrive: as exceptions, and a run that cannot go on fails.
    """
    try:
        from youtu_rag.distributed import ray_cluster
    except ImportError as error:
        raise RuntimeError(f"this needs Ray ({error}): pip install 'youtu-rag[ray]'") from error

    level = logging.INFO if logging.getLogger().isEnabledFor(logging.INFO) else logging.ERROR
    logging.getLogger("ray.data").setLevel(level)  # Ray Data sets its own level
    return ray_cluster(address, logging_level=level)


def _index_on_ray(
    paths: list[Path], address: str | None, *, url: str | None, **options: Any
) -> IngestReport:
    if url is None:
        raise ValueError("--ray writes through a Chroma server: pass --url http://HOST:PORT")
    with _ray_cluster(address):
        from youtu_rag.distributed import index_with_ray

        return index_with_ray(paths, url=url, show_progress=True, **options)


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
    from youtu_rag.backends import is_remote
    from youtu_rag.verify import TOLERANCE, WEATHER_DOCUMENTS, WEATHER_QUERY
    from youtu_rag.verify import verify as run_verify

    if is_remote(model):
        raise ValueError(f"verify checks a model loaded here, not an API: {model}")
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


# --- serve -------------------------------------------------------------------------------------


@app.command()
@handle_errors
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8080,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Texts per forward pass, at most.")
    ] = DEFAULT_BATCH_SIZE,
    max_batch_tokens: Annotated[
        int,
        typer.Option("--max-batch-tokens", min=1, help="Padded tokens per forward pass, at most."),
    ] = DEFAULT_MAX_BATCH_TOKENS,
    max_wait_ms: Annotated[
        float,
        typer.Option(
            "--max-wait-ms", min=0, help="How long a batch that is not full waits for more texts."
        ),
    ] = 2.0,
    max_requests_per_batch: Annotated[
        int | None,
        typer.Option(
            "--max-requests-per-batch",
            min=1,
            help="Requests sharing one forward pass (default: as many as fit; 1: none shared).",
        ),
    ] = None,
    max_length: Annotated[
        int | None,
        typer.Option("--max-length", min=1, help="Tokens per text (default: the model's)."),
    ] = None,
    query_instruction: Annotated[
        str | None,
        typer.Option(
            "--query-instruction",
            help="Query task text or a C-MTEB preset name (default: the model's).",
        ),
    ] = None,
    document_instruction: Annotated[
        str | None,
        typer.Option("--document-instruction", help="Document task text (default: none)."),
    ] = None,
    max_texts_per_request: Annotated[
        int, typer.Option("--max-texts-per-request", min=1, help="Texts in one request, at most.")
    ] = 2048,
    max_text_chars: Annotated[
        int, typer.Option("--max-text-chars", min=1, help="Characters in one text, at most.")
    ] = 100_000,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", min=1, help="Request body size, at most.")
    ] = 16 * 1024 * 1024,
    max_queued_texts: Annotated[
        int,
        typer.Option("--max-queued-texts", min=1, help="Texts waiting before requests get 429."),
    ] = 65_536,
    request_timeout: Annotated[
        float,
        typer.Option("--request-timeout", min=0.001, help="Seconds before a request gets 503."),
    ] = 60.0,
    auto_truncate: Annotated[
        bool,
        typer.Option(
            "--auto-truncate", help="Cut texts longer than the model's limit instead of a 400."
        ),
    ] = False,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            "--api-key-env",
            help="Environment variable holding the API key clients must send as a bearer token.",
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            help="torch CPU threads (default: torch's). 1 is faster on a busy, shared CPU.",
        ),
    ] = None,
    *,
    model_options: ModelOptions,
) -> None:
    """An OpenAI-compatible /v1/embeddings server: one loaded model shared by every client."""
    import os

    import torch

    from youtu_rag.embedder import YoutuEmbedder
    from youtu_rag.server import BatchingOptions, EmbeddingService, ServerLimits
    from youtu_rag.server import serve as run_server

    model = model_options.model
    api_key = None
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env, "")
        if not api_key.strip():
            raise ValueError(f"--api-key-env {api_key_env}: that environment variable is empty")
    _check_model_path(model)
    if threads is not None:
        torch.set_num_threads(threads)

    def load() -> YoutuEmbedder:
        return YoutuEmbedder(
            model,
            device=model_options.device,
            dtype=model_options.dtype,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            max_length=max_length,
            query_instruction=query_instruction,
            document_instruction=document_instruction,
        )

    service = EmbeddingService(
        load,
        limits=ServerLimits(
            max_texts_per_request=max_texts_per_request,
            max_text_chars=max_text_chars,
            max_body_bytes=max_body_bytes,
            request_timeout_s=request_timeout,
            max_queued_texts=max_queued_texts,
            auto_truncate=auto_truncate,
        ),
        batching=BatchingOptions(
            max_wait_ms=max_wait_ms, max_requests_per_batch=max_requests_per_batch
        ),
        api_key=api_key,
    )
    logging.getLogger("youtu_rag").setLevel(logging.INFO)
    err_console.print(
        f"Serving {model} on http://{host}:{port}/v1 (loading; GET /health says when ready)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    run_server(service, host=host, port=port)


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
    from youtu_rag.backends import create_embedder
    from youtu_rag.evaluation import evaluate, load_beir

    dataset = load_beir(beir, split)  # a malformed folder fails before the model loads
    embedder = create_embedder(
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

    from youtu_rag.backends import is_remote
    from youtu_rag.bench import bench_encode, load_bench_texts
    from youtu_rag.random_checkpoint import UtuShape, build_random_utu

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
    as_json: EvalJsonOption = False,
    *,
    model_options: ModelOptions,
) -> None:
    """texts/s, tokens/s and p50/p99 latency of a youtu-rag server (with and without dynamic
    batching) against the same model in process, with 1, 8 and 32 concurrent clients."""
    from youtu_rag.bench_serve import bench_serve, load_requests

    if input_type not in ("query", "document"):
        raise ValueError(f"--input-type must be query or document, got {input_type!r}")
    result = bench_serve(
        model_options.model,
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
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
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
    repeats: Annotated[
        int, typer.Option("--repeats", min=1, help="Rounds; each method keeps its fastest.")
    ] = 1,
    as_json: EvalJsonOption = False,
) -> None:
    """docs/s indexing files locally and on Ray with 1, 2, ... workers, and Ray's fixed cost."""
    import time

    from youtu_rag.bench import bench_index, load_bench_texts

    texts = load_bench_texts(beir, limit)
    start = time.perf_counter()
    with _ray_cluster(ray_address):
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
