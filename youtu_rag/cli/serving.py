"""``youtu-rag serve``: the OpenAI-compatible embeddings server."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from youtu_rag.cli.app import app, err_console, handle_errors
from youtu_rag.cli.options import ModelOptions, model_or_default
from youtu_rag.cli.resources import check_model_path
from youtu_rag.model.defaults import DEFAULT_BATCH_SIZE, DEFAULT_MAX_BATCH_TOKENS

if TYPE_CHECKING:
    from youtu_rag.model.embedder import YoutuEmbedder


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
    body_timeout: Annotated[
        float,
        typer.Option(
            "--body-timeout", min=0.001, help="Seconds a client has to send its request body."
        ),
    ] = 30.0,
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
    default_input_type: Annotated[
        str,
        typer.Option(
            "--default-input-type",
            help="query or document: how to embed a request that names neither (no "
            "input_type field, no MODEL:query / MODEL:document alias), for clients that cannot "
            "say it, e.g. a Chroma OpenAIEmbeddingFunction used for queries only.",
        ),
    ] = "document",
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            help="torch CPU threads (default: torch's). 1 is faster on a busy, shared CPU.",
        ),
    ] = None,
    rerank: Annotated[
        str | None,
        typer.Option(
            "--rerank",
            help="Also serve POST /v1/rerank (Cohere/Jina shape) with this cross-encoder "
            "(hub id or local directory).",
        ),
    ] = None,
    *,
    model_options: ModelOptions,
) -> None:
    """An OpenAI-compatible /v1/embeddings server: one loaded model shared by every client
    (and, with --rerank, a /v1/rerank endpoint)."""
    import os

    from youtu_rag.backends.protocol import is_remote
    from youtu_rag.backends.settings import EmbedderSettings
    from youtu_rag.serve.sockets import listen

    model = model_or_default(model_options.model)
    api_key = None
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env, "")
        if not api_key.strip():
            raise ValueError(f"--api-key-env {api_key_env}: that environment variable is empty")
    check_model_path(model)
    if rerank is not None:
        check_model_path(rerank)
    if default_input_type not in ("query", "document"):
        raise ValueError(
            f"--default-input-type must be query or document, got {default_input_type!r}"
        )
    if is_remote(model):
        raise ValueError(
            f"--model {model}: serve runs a model in this process; this one is served "
            "elsewhere already"
        )
    # The same settings model as the adapters: one validation, one place that builds.
    settings = EmbedderSettings(
        model_name_or_path=model,
        device=model_options.device,
        dtype=model_options.dtype,
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
        max_length=max_length,
        query_instruction=query_instruction,
        document_instruction=document_instruction,
    )

    # Listening before torch is even imported: clients connect at once and wait for /health.
    listening = listen(host, port)
    err_console.print(
        f"Serving {model} on http://{host}:{port}/v1 (loading; GET /health says when ready); "
        f"requests that name no input type are embedded as {default_input_type}s",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )

    from youtu_rag.serve.app import BatchingOptions, EmbeddingService, ServerLimits
    from youtu_rag.serve.app import serve as run_server

    def load() -> YoutuEmbedder:
        # torch is imported here, in the loading thread, while /health already answers.
        import torch

        from youtu_rag.model.embedder import YoutuEmbedder

        if threads is not None:
            torch.set_num_threads(threads)
        embedder = settings.build()
        assert isinstance(embedder, YoutuEmbedder)  # a local model, checked above
        return embedder

    service = EmbeddingService(
        load,
        load_reranker=None if rerank is None else _reranker_loader(rerank, model_options),
        limits=ServerLimits(
            max_texts_per_request=max_texts_per_request,
            max_text_chars=max_text_chars,
            max_body_bytes=max_body_bytes,
            request_timeout_s=request_timeout,
            body_timeout_s=body_timeout,
            max_queued_texts=max_queued_texts,
            auto_truncate=auto_truncate,
        ),
        batching=BatchingOptions(
            max_wait_ms=max_wait_ms, max_requests_per_batch=max_requests_per_batch
        ),
        api_key=api_key,
        default_input_type="query" if default_input_type == "query" else "document",
    )
    logging.getLogger("youtu_rag").setLevel(logging.INFO)
    run_server(service, listening=listening)


def _reranker_loader(model: str, options: ModelOptions) -> Callable[[], Any]:
    from youtu_rag.backends.protocol import create_reranker

    return lambda: create_reranker(model, device=options.device, dtype=options.dtype)
