"""Commands over one collection: ``index``, ``search``, ``ask`` and ``info``."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from youtu_rag.cli.app import (
    EXIT_INTERRUPTED,
    EXIT_SKIPPED,
    app,
    console,
    err_console,
    handle_errors,
)
from youtu_rag.cli.options import (
    DEFAULT_MODE,
    CollectionModelOptions,
    JsonOption,
    KOption,
    ModeOption,
    ServerOption,
    StoreOptions,
    server_or_default,
)
from youtu_rag.cli.resources import (
    check_store_options,
    choose_for_collection,
    connect_store,
    database_removed_on_failure,
    load_reranker,
    one_line,
    open_store,
    stop_on_ctrl_c,
)
from youtu_rag.index.defaults import DEFAULT_CANDIDATES

if TYPE_CHECKING:
    from youtu_rag.cli.resources import ChosenModel
    from youtu_rag.index.fusion import SearchMode
    from youtu_rag.index.store import ChromaStore, Hit
    from youtu_rag.ingest.pdf import OcrMode
    from youtu_rag.ingest.pipeline import IngestReport


def location(metadata: dict[str, Any]) -> str:
    """Where a chunk is in its file, as the text output shows it: ``§ Guide > Install``,
    ``page 3 (OCR)``, ``slide 2``, ``sheet 'Ledger'``."""
    parts = []
    if metadata.get("sheet") is not None:
        parts.append(f"sheet {str(metadata['sheet'])!r}")
    if metadata.get("slide") is not None:
        parts.append(f"slide {metadata['slide']}")
    if metadata.get("page") is not None:
        parts.append(f"page {metadata['page']}" + (" (OCR)" if metadata.get("ocr") else ""))
    if metadata.get("section"):
        parts.append(f"§ {metadata['section']}")
    return ", ".join(parts)


def _preview(text: str, width: int = 240) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


WhereOption = Annotated[
    str | None,
    typer.Option("--where", help='Chroma metadata filter as JSON: \'{"source": "/a/b.md"}\''),
]
MmrOption = Annotated[bool, typer.Option("--mmr", help="Diversify results (MMR).")]
RerankOption = Annotated[
    str | None,
    typer.Option(
        "--rerank",
        help="A cross-encoder (hub id or local directory) that reorders the first stage's "
        "--candidates hits; -k of them are kept.",
    ),
]
CandidatesOption = Annotated[
    int,
    typer.Option("--candidates", min=1, help="First-stage hits the --rerank model reads."),
]
QueryInstructionOption = Annotated[
    str | None,
    typer.Option(
        "--query-instruction",
        help="Query task text or a C-MTEB preset name instead of the one the collection "
        "records ('' for none); document vectors do not depend on it.",
    ),
]


def _say_model(store: ChromaStore, chosen: ChosenModel) -> None:
    """On stderr: which model embeds, why, and a query instruction other than the recorded one."""
    err_console.print(chosen.describe(), markup=False)
    if store.query_prefix_change is not None:
        recorded, used = store.query_prefix_change
        err_console.print(
            f"query prefix: {used!r} instead of the collection's {recorded!r} "
            "(document vectors are unaffected)",
            markup=False,
        )


def _require_text(text: str, name: str) -> None:
    """An empty query fails at once, before a model loads for it."""
    if not text.strip():
        raise ValueError(f"{name} is empty: say what to look for")


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
        list[Path],
        typer.Argument(
            help="Files and folders to index: text, Markdown, PDF, Word, PowerPoint, Excel, "
            "CSV/TSV, web pages and images (see docs/documents.md)."
        ),
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
    separators: Annotated[
        str | None,
        typer.Option(
            "--separators",
            help="Where chunks may end, in order of preference: a preset (default: sentence "
            "and clause ends of every script; cjk; latin; langchain) or a JSON list of "
            "regular expressions.",
        ),
    ] = None,
    rechunk: Annotated[
        bool,
        typer.Option(
            "--rechunk",
            help="The collection was chunked under other rules: chunk every file under PATHS "
            "anew. Other files keep their chunks until indexed again (see --drop-others).",
        ),
    ] = False,
    drop_others: Annotated[
        bool,
        typer.Option(
            "--drop-others",
            help="With --rechunk: remove the chunks of files not under PATHS (each named "
            "before its chunks go).",
        ),
    ] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove chunks of files under PATHS that are gone.")
    ] = False,
    ocr: Annotated[
        str,
        typer.Option(
            "--ocr",
            help="auto: read scanned PDF pages and images by OCR; always: every PDF page too; "
            "never: no OCR (images are then skipped).",
        ),
    ] = "auto",
    as_json: JsonOption = False,
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
    model_options: CollectionModelOptions,
) -> None:
    """Chunk, embed and store files; re-runs write only what changed.

    Files that cannot be read, decoded or parsed are skipped and listed (exit status 3); Ctrl-C
    stops after the current batch, keeping what was written (exit status 130).
    """
    from youtu_rag.ingest.chunking import parse_separators
    from youtu_rag.ingest.pipeline import find_files, ingest

    parse_separators(separators)  # bad separators fail before the model loads
    if ocr not in ("auto", "always", "never"):
        raise ValueError(f"--ocr must be auto, always or never, got {ocr!r}")
    ocr_mode = cast("OcrMode", ocr)
    if drop_others and not rechunk:
        raise ValueError("--drop-others goes with --rechunk")
    if ray or ray_address is not None:
        from youtu_rag.backends.protocol import is_remote

        check_store_options(store_options)
        if store_options.url is not None:
            _require_ray()  # before the server is asked which model the collection has
        chosen = choose_for_collection(store_options, model_options)
        model = chosen.name
        if is_remote(model):
            raise ValueError(f"--ray runs a local model on each worker; {model} runs elsewhere")
        report = _index_on_ray(
            paths,
            ray_address,
            url=store_options.url,
            collection=store_options.collection,
            model=model,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            separators=separators,
            rechunk=rechunk,
            drop_others=drop_others,
            prune=prune,
            ocr=ocr_mode,
            concurrency=ray_workers,
            num_gpus=ray_gpus_per_worker,
            device=model_options.device,
            dtype=model_options.dtype,
        )
        err_console.print(chosen.describe(), markup=False)
    else:
        find_files(paths)  # a mistyped path fails before the model loads
        with database_removed_on_failure(store_options) as clients:
            store, chosen = open_store(store_options, model_options, create=True)
            clients.append(store.client)
            _say_model(store, chosen)
            with stop_on_ctrl_c() as stop:
                report = ingest(
                    store,
                    paths,
                    chunk_size=chunk_size,
                    chunk_overlap=chunk_overlap,
                    separators=separators,
                    rechunk=rechunk,
                    drop_others=drop_others,
                    prune=prune,
                    ocr=ocr_mode,
                    show_progress=not as_json,
                    stop=stop,
                )
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(report), ensure_ascii=False, indent=2))
        raise typer.Exit(_index_status(report))
    for entry in report.skipped:
        err_console.print(f"skipped {entry.path}: {entry.reason}", markup=False)
    if report.unsupported:
        counts = ", ".join(f"{suffix} ({n})" for suffix, n in report.unsupported.items())
        err_console.print(
            f"skipped {sum(report.unsupported.values())} files of unsupported types: {counts}",
            markup=False,
        )
    if report.interrupted:
        console.print(
            f"Stopped by Ctrl-C: {report.chunks_written} chunks written, "
            f"{report.chunks_deleted} removed, {report.total_chunks} chunks in total. "
            "Run the same command again to continue."
        )
        raise typer.Exit(EXIT_INTERRUPTED)
    pruned = f", {report.pruned_files} deleted files pruned" if prune else ""
    skipped = f", {len(report.skipped)} skipped (listed above)" if report.skipped else ""
    if report.rechunked:
        dropped, others = report.dropped_files, report.other_files
        console.print(
            f"Re-chunked {store_options.collection!r} under the new chunking rules: "
            f"{report.changed + report.unchanged} files chunked anew"
            + (f", {dropped} files not under PATHS removed (--drop-others)" if dropped else "")
            + (
                f"; {others} files not under PATHS keep chunks cut under the old rules until "
                "they are indexed again (or --drop-others removes them)"
                if others
                else ""
            )
            + "."
        )
    ocr_pages = f", {report.ocr_pages} pages read by OCR" if report.ocr_pages else ""
    console.print(
        f"Indexed {report.files} files into {store_options.collection!r}: "
        f"{report.changed} new or changed, "
        f"{report.unchanged} unchanged, {report.empty} empty skipped{skipped}{pruned}{ocr_pages}; "
        f"{report.chunks_written} chunks written, {report.chunks_deleted} removed; "
        f"{report.total_chunks} chunks in total.",
    )
    if report.skipped:
        raise typer.Exit(EXIT_SKIPPED)


def _index_status(report: IngestReport) -> int:
    """The documented exit status of a run (with --json, the same as without)."""
    if report.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_SKIPPED if report.skipped else 0


def _require_ray() -> None:
    """Fail in one line, naming the extra, when Ray is not installed."""
    try:
        import youtu_rag.ingest.distributed  # noqa: F401  (imports Ray)
    except ImportError as error:
        raise RuntimeError(f"this needs Ray ({error}): pip install 'youtu-rag[ray]'") from error


def ray_cluster(address: str | None) -> AbstractContextManager[None]:
    """Join or start a Ray cluster (extra ``ray``); Ray's own logs stay quiet without -v.

    Its errors still arrive: as exceptions, and a run that cannot go on fails.
    """
    _require_ray()
    from youtu_rag.ingest.distributed import ray_cluster as start_cluster

    level = logging.INFO if logging.getLogger().isEnabledFor(logging.INFO) else logging.ERROR
    logging.getLogger("ray.data").setLevel(level)  # Ray Data sets its own level
    return start_cluster(address, logging_level=level)


def _index_on_ray(
    paths: list[Path], address: str | None, *, url: str | None, **options: Any
) -> IngestReport:
    if url is None:
        raise ValueError("--ray writes through a Chroma server: pass --url http://HOST:PORT")
    with ray_cluster(address):
        from youtu_rag.ingest.distributed import index_with_ray

        return index_with_ray(paths, url=url, show_progress=True, **options)


@app.command()
@handle_errors
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: KOption = 4,
    where: WhereOption = None,
    mmr: MmrOption = False,
    query_instruction: QueryInstructionOption = None,
    mode: ModeOption = DEFAULT_MODE,
    rerank: RerankOption = None,
    candidates: CandidatesOption = DEFAULT_CANDIDATES,
    as_json: JsonOption = False,
    server: ServerOption = None,
    *,
    store_options: StoreOptions,
    model_options: CollectionModelOptions,
) -> None:
    """The passages best matching QUERY, with their scores and sources.

    The score is the cosine similarity (dense), the BM25 score (lexical) or the fused
    reciprocal-rank score (hybrid); each side's rank is shown as d#N and l#N. The model is the one
    the collection records, unless --model says otherwise (it must be the same); the line
    "model: ..." on stderr says which, and where the choice came from.
    """
    _require_text(query, "QUERY")
    retrieval = _Retrieval.open(
        k,
        where,
        mmr,
        mode,
        rerank,
        candidates,
        query_instruction,
        server,
        store_options,
        model_options,
    )
    _print_hits(retrieval.run(query), retrieval.mode, as_json=as_json)


@app.command()
@handle_errors
def shell(
    k: KOption = 4,
    where: WhereOption = None,
    mmr: MmrOption = False,
    query_instruction: QueryInstructionOption = None,
    mode: ModeOption = DEFAULT_MODE,
    rerank: RerankOption = None,
    candidates: CandidatesOption = DEFAULT_CANDIDATES,
    as_json: JsonOption = False,
    server: ServerOption = None,
    *,
    store_options: StoreOptions,
    model_options: CollectionModelOptions,
) -> None:
    """Search interactively: the model and the index open once, then each line read is a query,
    answered as `search` answers it (an empty line is skipped; Ctrl-D or `exit` ends)."""
    retrieval = _Retrieval.open(
        k,
        where,
        mmr,
        mode,
        rerank,
        candidates,
        query_instruction,
        server,
        store_options,
        model_options,
    )
    interactive = sys.stdin.isatty()
    while True:
        try:
            line = input("query> " if interactive else "")
        except EOFError:
            break
        query = line.strip()
        if query in ("exit", "quit"):
            break
        if not query:
            continue
        _print_hits(retrieval.run(query), retrieval.mode, as_json=as_json)


def _origin(hit: Hit) -> str:
    """``SOURCE  #CHUNK`` for a chunk ``index`` wrote; the id for a record from elsewhere
    (plain Chroma, ``reembed``)."""
    if hit.source is None:
        return f"id {hit.id}"
    return f"{hit.source}  #{hit.metadata.get('chunk', '?')}"


def _print_hits(hits: list[Hit], search_mode: SearchMode, *, as_json: bool) -> None:
    """The hits as ``search`` prints them: numbered lines with score, source and location, or
    JSON."""
    if as_json:
        typer.echo(json.dumps([hit.to_dict() for hit in hits], ensure_ascii=False, indent=2))
        return
    if not hits:
        err_console.print("no matching passages")
    for rank, hit in enumerate(hits, start=1):
        sides = " ".join(
            f"{side}#{position}"
            for side, position in (("d", hit.dense_rank), ("l", hit.lexical_rank))
            if position is not None and search_mode == "hybrid"
        )
        reranked = "" if hit.rerank_score is None else f"rerank {hit.rerank_score:.4f}  "
        where = location(hit.metadata)
        console.print(
            f"{rank}. {reranked}{hit.score:.4f}  {_origin(hit)}"
            + (f"  ({sides})" if sides else "")
            + (f"  {where}" if where else ""),
            markup=False,
        )
        console.print("   " + _preview(hit.text), markup=False)


@app.command()
@handle_errors
def ask(
    question: Annotated[str, typer.Argument(help="The question to answer from the index.")],
    chat: Annotated[
        str | None,
        typer.Option(
            "--chat",
            help="PROVIDER:MODEL for LangChain's init_chat_model, e.g. openai:gpt-4o-mini; a "
            "local OpenAI-compatible server works with OPENAI_BASE_URL=http://HOST:PORT/v1 and "
            "--chat openai:NAME.",
        ),
    ] = None,
    k: KOption = 4,
    where: WhereOption = None,
    mmr: MmrOption = False,
    stream: Annotated[
        bool | None,
        typer.Option(
            "--stream/--no-stream",
            help="Print the answer as it arrives (default: when stdout is a terminal).",
            show_default=False,
        ),
    ] = None,
    query_instruction: QueryInstructionOption = None,
    mode: ModeOption = DEFAULT_MODE,
    rerank: RerankOption = None,
    candidates: CandidatesOption = DEFAULT_CANDIDATES,
    server: ServerOption = None,
    *,
    store_options: StoreOptions,
    model_options: CollectionModelOptions,
) -> None:
    """Answer QUESTION with a chat model from the retrieved passages, citing their sources.

    Without --chat, print the context a chat model would get.
    """
    from youtu_rag.index.prompt import format_context, format_sources

    _require_text(question, "QUESTION")
    chat_model = None if chat is None else _chat_model(chat)
    retrieval = _Retrieval.open(
        k,
        where,
        mmr,
        mode,
        rerank,
        candidates,
        query_instruction,
        server,
        store_options,
        model_options,
    )
    hits = retrieval.run(question)
    if not hits:
        # Nothing to answer from: a chat model given an empty context answers from nowhere.
        err_console.print("no matching passages")
        return
    if chat_model is None:
        console.print(format_context(hits))
        err_console.print(
            "No chat model configured: pass --chat PROVIDER:MODEL (e.g. openai:gpt-4o-mini) "
            "to get an answer.",
        )
        return

    from langchain_youtu.chain import to_passages

    chain = _answer_chain(hits, chat_model)
    if stream if stream is not None else sys.stdout.isatty():
        sources: list[Any] = []
        for chunk in chain.stream(question):
            sources = chunk.get("sources", sources)
            if "answer" in chunk:
                console.print(chunk["answer"], end="")
                console.file.flush()
        console.print()
    else:
        result = chain.invoke(question)
        console.print(result["answer"])
        sources = result["sources"]
    console.print("\nSources:")
    console.print(format_sources(to_passages(sources)))


@dataclasses.dataclass(frozen=True)
class _Retrieval:
    """What ``search``, ``shell`` and ``ask`` retrieve with: the store opened once, the filter,
    mode and reranker checked before anything loads."""

    store: ChromaStore
    k: int
    filters: dict[str, Any] | None
    mmr: bool
    mode: SearchMode
    reranker: Any
    candidates: int

    @classmethod
    def open(
        cls,
        k: int,
        where: str | None,
        mmr: bool,
        mode: str,
        rerank: str | None,
        candidates: int,
        query_instruction: str | None,
        server: str | None,
        store_options: StoreOptions,
        model_options: CollectionModelOptions,
    ) -> _Retrieval:
        from youtu_rag.index.fusion import check_mode

        filters = _parse_where(where)
        search_mode = check_mode(mode)
        reranker = None if rerank is None else load_reranker(rerank, model_options)
        store, chosen = open_store(
            store_options,
            model_options,
            create=False,
            query_instruction=query_instruction,
            server=server_or_default(server),
        )
        _say_model(store, chosen)
        return cls(store, k, filters, mmr, search_mode, reranker, candidates)

    def run(self, query: str) -> list[Hit]:
        """The first stage (``candidates`` hits when a reranker reorders them), then the
        rerank."""
        first = max(self.k, self.candidates) if self.reranker is not None else self.k
        hits = self.store.search(query, k=first, where=self.filters, mmr=self.mmr, mode=self.mode)
        if self.reranker is None:
            return hits
        from youtu_rag.index.rerank import rerank_hits

        return rerank_hits(self.reranker, query, hits, self.k)


def _answer_chain(hits: list[Hit], chat_model: Any) -> Any:
    """The RAG chain over the passages already retrieved (the chain does not search again)."""
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from langchain_youtu import create_rag_chain
    from langchain_youtu.retriever import hit_to_document

    documents = [hit_to_document(hit) for hit in hits]

    class Retrieved(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
            return documents

    return create_rag_chain(Retrieved(), chat_model)


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
        raise RuntimeError(f"cannot start chat model {spec!r}: {one_line(error)}") from error


@app.command()
@handle_errors
def info(as_json: JsonOption = False, *, store_options: StoreOptions) -> None:
    """What the collection holds and which model built it (loads no model)."""
    from youtu_rag.index.store import describe

    details = describe(connect_store(store_options, create=False), store_options.collection)
    if as_json:
        typer.echo(json.dumps(details.to_dict(), ensure_ascii=False, indent=2))
        return
    for key, value in details.to_dict().items():
        shown = repr(value) if value == "" else value
        console.print(f"{key}: {shown}")
