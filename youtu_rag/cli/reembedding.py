"""``youtu-rag reembed``: a collection made by another embedding function, copied into a youtu-rag
collection with new vectors."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer

from youtu_rag.cli.app import EXIT_INTERRUPTED, app, console, err_console, handle_errors
from youtu_rag.cli.options import CollectionModelOptions, JsonOption, StoreOptions
from youtu_rag.cli.resources import (
    check_store_options,
    database_removed_on_failure,
    open_store,
    stop_on_ctrl_c,
)
from youtu_rag.index.defaults import DEFAULT_PERSIST_DIR


@app.command()
@handle_errors
def reembed(
    source: Annotated[str, typer.Argument(help="The collection to copy (any embedding function).")],
    to: Annotated[str, typer.Option("--to", help="The youtu-rag collection to fill.")],
    persist_dir: Annotated[
        str, typer.Option("--persist-dir", help="Directory of the embedded Chroma database.")
    ] = DEFAULT_PERSIST_DIR,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Chroma server, e.g. http://127.0.0.1:8000 (instead of a dir)."),
    ] = None,
    from_persist_dir: Annotated[
        str | None,
        typer.Option("--from-persist-dir", help="The source's database, when elsewhere."),
    ] = None,
    from_url: Annotated[
        str | None,
        typer.Option("--from-url", help="The source's Chroma server, when elsewhere."),
    ] = None,
    as_json: JsonOption = False,
    *,
    model_options: CollectionModelOptions,
) -> None:
    """Copy SOURCE's ids, texts and metadata into the youtu-rag collection --to, embedded anew
    (the source is only read). A run that stops resumes where it left off; records without
    text are counted and left out. Ctrl-C stops after the current step (exit status 130)."""
    from chromadb.errors import NotFoundError

    from youtu_rag.index.reembed import reembed as copy_collection
    from youtu_rag.index.store import CollectionNotFoundError, connect, server_errors

    target = StoreOptions(persist_dir=persist_dir, url=url, collection=to)
    check_store_options(target)
    if from_persist_dir is not None and from_url is not None:
        raise ValueError("--from-persist-dir and --from-url name two sources; give one")
    elsewhere = from_persist_dir is not None or from_url is not None
    client = connect(
        (from_persist_dir if elsewhere else None if url else persist_dir),
        from_url if elsewhere else url,
        create=False,
    )
    try:
        with server_errors(client):
            collection = client.get_collection(source)
    except NotFoundError as error:
        raise CollectionNotFoundError(f"collection {source!r} does not exist there") from error
    with database_removed_on_failure(target) as clients:
        store, chosen = open_store(target, model_options, create=True)
        clients.append(store.client)
        err_console.print(chosen.describe(), markup=False)
        with stop_on_ctrl_c() as stop:
            report = copy_collection(collection, store, show_progress=not as_json, stop=stop)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(report), ensure_ascii=False, indent=2))
    else:
        console.print(
            f"Re-embedded {source!r} into {to!r}: {report.copied} records embedded, "
            f"{report.already_there} already there, {report.without_text} without text left "
            f"out; {report.total} records in {to!r}."
            + (
                " Stopped by Ctrl-C: run the same command again to continue."
                if report.interrupted
                else ""
            )
        )
    if report.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
