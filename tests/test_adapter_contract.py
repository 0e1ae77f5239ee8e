"""One contract, three adapters (LangChain, LlamaIndex, Chroma): vectors equal the core's, the
options are the core's (unknown ones refused, aliases accepted), fields never drift from the
vectors on any copy path, copies share the loaded model, bad input is named, and each adapter
works without the other frameworks installed."""

from __future__ import annotations

import asyncio
import copy
import os
import pickle
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_youtu import YoutuEmbeddings
from llama_index.embeddings.youtu import YoutuEmbedding

from tests.samples import DOCUMENTS, INSTRUCTION, QUERIES, tiny_options
from youtu_rag import MINILM, YoutuEmbedder, YoutuEmbeddingFunction

REPO = Path(__file__).resolve().parents[1]


def _pickled(adapter: Any) -> Any:
    return pickle.loads(pickle.dumps(adapter))


@dataclass(frozen=True)
class Adapter:
    """How the contract drives one adapter."""

    build: Callable[..., Any]
    documents: Callable[[Any, list[str]], Any]
    query: Callable[[Any, str], Any]
    #: The options that describe it, as core keywords.
    fields: Callable[[Any], dict[str, Any]]
    #: Every way to get an equal copy.
    copies: Mapping[str, Callable[[Any], Any]]
    #: A copy with some options changed.
    changed: Callable[[Any, dict[str, Any]], Any]
    assign: Callable[[Any], None]
    assign_error: type[Exception]
    adocuments: Callable[[Any, list[str]], Any] | None = None
    aquery: Callable[[Any, str], Any] | None = None
    #: Run in a fresh interpreter with the other frameworks blocked.
    alone: str = ""


def _pydantic_adapter(
    cls: Any, methods: tuple[str, str, str, str], copies: Mapping[str, Any], alone: str
) -> Adapter:
    """A LangChain or LlamaIndex adapter: a pydantic model of the settings, whose embedding
    methods (documents, query, and their async twins) are named in ``methods``."""
    return Adapter(
        build=cls,
        documents=lambda adapter, texts: getattr(adapter, methods[0])(texts),
        query=lambda adapter, text: getattr(adapter, methods[1])(text),
        fields=lambda adapter: adapter.embedder_options(),
        copies={
            "model_copy": lambda adapter: adapter.model_copy(),
            **copies,
            "pickle": _pickled,
            "deepcopy": copy.deepcopy,
        },
        changed=lambda adapter, update: adapter.model_copy(update=update),
        assign=lambda adapter: setattr(adapter, "query_instruction", ""),
        assign_error=ValueError,
        adocuments=lambda adapter, texts: getattr(adapter, methods[2])(texts),
        aquery=lambda adapter, text: getattr(adapter, methods[3])(text),
        alone=alone,
    )


ADAPTERS = {
    "langchain": _pydantic_adapter(
        YoutuEmbeddings,
        ("embed_documents", "embed_query", "aembed_documents", "aembed_query"),
        {"model_validate": lambda adapter: YoutuEmbeddings.model_validate(adapter.model_dump())},
        alone="""
            sys.modules["llama_index"] = None  # as if the llamaindex extra were not installed
            from langchain_youtu import YoutuEmbeddings
            vector = YoutuEmbeddings(model=MODEL, device="cpu").embed_query("hello")
            assert not any(name.startswith("llama_index.") for name in sys.modules)
        """,
    ),
    "llamaindex": _pydantic_adapter(
        YoutuEmbedding,
        (
            "get_text_embedding_batch",
            "get_query_embedding",
            "aget_text_embedding_batch",
            "aget_query_embedding",
        ),
        {
            "to_dict/from_dict": lambda adapter: YoutuEmbedding.from_dict(adapter.to_dict()),
            "to_json/from_json": lambda adapter: YoutuEmbedding.from_json(adapter.to_json()),
        },
        alone="""
            # langchain-core itself comes with the core's text splitter dependency, so only
            # what the langchain extra adds is blocked.
            for blocked in ("langchain", "langchain_youtu"):
                sys.modules[blocked] = None
            from llama_index.embeddings.youtu import YoutuEmbedding
            vector = YoutuEmbedding(model=MODEL, device="cpu").get_query_embedding("hello")
        """,
    ),
    "chroma": Adapter(
        build=lambda **options: YoutuEmbeddingFunction(**options),
        documents=lambda function, texts: np.stack(function(texts)).tolist(),
        query=lambda function, text: function.embed_query([text])[0].tolist(),
        fields=lambda function: function.get_config(),
        copies={
            "get_config/build_from_config": lambda function: (
                YoutuEmbeddingFunction.build_from_config(function.get_config())
            ),
            "pickle": _pickled,
            "deepcopy": copy.deepcopy,
        },
        changed=lambda function, update: YoutuEmbeddingFunction.build_from_config(
            {**function.get_config(), **update}
        ),
        assign=lambda function: setattr(function, "embedder", function.embedder),
        assign_error=AttributeError,
        alone="""
            for blocked in ("langchain", "langchain_youtu", "llama_index"):
                sys.modules[blocked] = None
            from youtu_rag import YoutuEmbeddingFunction
            vector = YoutuEmbeddingFunction(model=MODEL, device="cpu").embed_query(["hello"])[0]
        """,
    ),
}
ASYNC_ADAPTERS = [name for name, adapter in ADAPTERS.items() if adapter.adocuments]


@pytest.fixture(params=list(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> Adapter:
    spec: Adapter = ADAPTERS[request.param]
    return spec


@pytest.fixture(scope="module")
def core(tiny_youtu_dir: str) -> YoutuEmbedder:
    return YoutuEmbedder(**tiny_options(tiny_youtu_dir))


def _vectors(adapter: Adapter, instance: Any) -> tuple[np.ndarray, np.ndarray]:
    documents = np.asarray(adapter.documents(instance, DOCUMENTS))
    queries = np.asarray([adapter.query(instance, query) for query in QUERIES])
    return documents, queries


def _assert_same_vectors(adapter: Adapter, left: Any, right: Any) -> None:
    for mine, theirs in zip(_vectors(adapter, left), _vectors(adapter, right), strict=True):
        assert np.abs(mine - theirs).max() <= 1e-6


def test_vectors_equal_the_core(adapter: Adapter, core: YoutuEmbedder, tiny_youtu_dir: str) -> None:
    instance = adapter.build(**tiny_options(tiny_youtu_dir))
    documents = adapter.documents(instance, DOCUMENTS)
    query = adapter.query(instance, QUERIES[0])
    assert all(type(value) is float for value in documents[0] + query)
    documents_array, queries = _vectors(adapter, instance)
    assert np.abs(documents_array - core.encode_documents(DOCUMENTS)).max() <= 1e-6
    assert np.abs(queries - core.encode_queries(QUERIES)).max() <= 1e-6
    # The instruction reaches queries only.
    assert np.abs(queries - core.encode_documents(QUERIES)).max() > 1e-3


@pytest.mark.parametrize("name", ASYNC_ADAPTERS)
async def test_async_vectors_equal_the_core(
    name: str, core: YoutuEmbedder, tiny_youtu_dir: str
) -> None:
    adapter = ADAPTERS[name]
    assert adapter.adocuments is not None and adapter.aquery is not None
    instance = adapter.build(**tiny_options(tiny_youtu_dir))
    documents = await adapter.adocuments(instance, DOCUMENTS)
    query = await adapter.aquery(instance, QUERIES[0])
    assert np.abs(np.asarray(documents) - core.encode_documents(DOCUMENTS)).max() <= 1e-6
    assert np.abs(np.asarray(query) - core.encode_queries(QUERIES[:1])[0]).max() <= 1e-6


@pytest.mark.parametrize("name", ASYNC_ADAPTERS)
async def test_async_runs_the_model_off_the_event_loop(name: str, tiny_youtu_dir: str) -> None:
    adapter = ADAPTERS[name]
    assert adapter.adocuments is not None and adapter.aquery is not None
    instance = adapter.build(**tiny_options(tiny_youtu_dir))
    threads: list[int] = []
    embedder = instance.embedder
    for method in ("encode_documents", "encode_queries"):
        real = getattr(embedder, method)

        def recording(texts: Any, real: Callable[[Any], np.ndarray] = real) -> np.ndarray:
            threads.append(threading.get_ident())
            return real(texts)

        setattr(embedder, method, recording)
    await asyncio.gather(adapter.adocuments(instance, DOCUMENTS), adapter.aquery(instance, "sky"))
    # Every core call (one per LlamaIndex batch, and the query) ran in a worker thread.
    assert len(threads) >= 2
    assert threading.get_ident() not in threads


def test_every_copy_embeds_as_its_fields_say(adapter: Adapter, tiny_youtu_dir: str) -> None:
    original = adapter.build(**tiny_options(tiny_youtu_dir))
    for name, make_copy in adapter.copies.items():
        duplicate = make_copy(original)
        assert adapter.fields(duplicate) == adapter.fields(original), name
        # Same model settings: the loaded weights are shared, not duplicated.
        assert duplicate.embedder.backbone is original.embedder.backbone, name
        _assert_same_vectors(adapter, duplicate, adapter.build(**adapter.fields(duplicate)))


def test_a_changed_copy_embeds_with_its_changes(adapter: Adapter, tiny_youtu_dir: str) -> None:
    original = adapter.build(**tiny_options(tiny_youtu_dir))
    changed = adapter.changed(original, {"query_instruction": "", "max_length": 12})
    fields = adapter.fields(changed)
    assert (fields["query_instruction"], fields["max_length"]) == ("", 12)
    assert changed.embedder.backbone is original.embedder.backbone
    _assert_same_vectors(adapter, changed, adapter.build(**fields))
    original_queries = np.asarray([adapter.query(original, query) for query in QUERIES])
    changed_queries = np.asarray([adapter.query(changed, query) for query in QUERIES])
    assert np.abs(original_queries - changed_queries).max() > 1e-3


def test_assignment_is_refused(adapter: Adapter, tiny_youtu_dir: str) -> None:
    instance = adapter.build(**tiny_options(tiny_youtu_dir))
    before = adapter.fields(instance)
    with pytest.raises(adapter.assign_error):
        adapter.assign(instance)
    assert adapter.fields(instance) == before


@pytest.mark.parametrize(
    ("option", "hint"),
    [
        ({"normalize": False}, "normalize=False is not supported: youtu-rag vectors are always"),
        (
            {"encode_kwargs": {"normalize_embeddings": False}},
            "normalize_embeddings]=False is not supported: youtu-rag vectors are always",
        ),
        ({"encode_kwargs": {"precision": "int8"}}, "encode_kwargs 'precision' not understood"),
        ({"model_kwargs": {"revision": "main"}}, "model_kwargs 'revision' not understood"),
        ({"model_kwargs": {"device": "meta"}}, "='meta' and device='cpu' differ"),
        (
            {"cache_folder": "/tmp"},
            "cache_folder (models are read from the Hugging Face cache: set HF_HUB_CACHE",
        ),
        ({"truncate_dim": 64}, "truncate_dim (not supported"),
        ({"no_such_option": 1}, "does not understand no_such_option; its options are"),
        ({"pooling": "mean"}, "pooling='mean' names a reduction: use pooling_mode='mean'"),
        ({"model": "other"}, "differ; give one"),
    ],
)
def test_options_it_does_not_understand_are_refused(
    adapter: Adapter, tiny_youtu_dir: str, option: dict[str, Any], hint: str
) -> None:
    with pytest.raises(ValueError, match=hint.replace("(", r"\(")):
        adapter.build(**tiny_options(tiny_youtu_dir), **option)


def test_hugging_face_names_are_accepted(adapter: Adapter, tiny_youtu_dir: str) -> None:
    options = tiny_options(tiny_youtu_dir)
    options["model"] = options.pop("model_name_or_path")
    options.pop("batch_size", None)
    options.pop("device", None)
    instance = adapter.build(
        **options,
        text_instruction="STSB",
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True, "batch_size": 3, "show_progress_bar": False},
    )
    fields = adapter.fields(instance)
    assert fields["model_name_or_path"] == tiny_youtu_dir
    assert (fields["device"], fields["batch_size"]) == ("cpu", 3)
    assert instance.embedder.document_prefix.startswith("Instruction: Represent the short")


def test_instances_share_one_loaded_model(adapter: Adapter, tiny_youtu_dir: str) -> None:
    first = adapter.build(**tiny_options(tiny_youtu_dir))
    other = adapter.build(**tiny_options(tiny_youtu_dir, query_instruction=""))
    assert other.embedder is not first.embedder
    assert other.embedder.backbone is first.embedder.backbone
    assert other.embedder.query_prefix == "" != first.embedder.query_prefix
    assert first.embedder.query_task == INSTRUCTION


def test_bad_input_is_named_by_index(adapter: Adapter, tiny_youtu_dir: str) -> None:
    instance = adapter.build(**tiny_options(tiny_youtu_dir))
    with pytest.raises(ValueError, match="index 1"):
        adapter.documents(instance, ["fine", " \n"])
    with pytest.raises(TypeError, match="index 0"):
        adapter.query(instance, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_works_without_the_other_frameworks(name: str) -> None:
    body = textwrap.dedent(ADAPTERS[name].alone)
    script = f"import sys\nMODEL = {MINILM!r}\n{body}\nassert len(vector) == 384\nprint('ok')\n"
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().endswith("ok")
