"""YoutuEmbeddingFunction on real Chroma collections, including one reopened by a new process
(the contract shared with the other adapters is in test_adapter_contract.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import chromadb
import numpy as np
import pytest
import torch

from tests.samples import CORPUS, DOCUMENTS, INSTRUCTION, QUERIES, QUESTIONS, tiny_options
from youtu_rag import MINILM, YoutuEmbedder, YoutuEmbeddingFunction

REPO = Path(__file__).resolve().parents[1]


def test_from_embedder_wraps_without_reloading(
    tiny_youtu: YoutuEmbedder, tiny_youtu_dir: str
) -> None:
    wrapped = YoutuEmbeddingFunction.from_embedder(tiny_youtu)
    assert wrapped.embedder is tiny_youtu
    assert wrapped.name() == YoutuEmbeddingFunction.name() == "youtu_rag"
    assert wrapped.default_space() == "cosine"
    assert not wrapped.is_legacy()
    built = YoutuEmbeddingFunction(tiny_youtu_dir, device="cpu", batch_size=2)
    assert built.embedder.backbone is tiny_youtu.backbone
    assert built.get_config() == wrapped.get_config()


def test_config_is_json_and_rebuilds_the_same_embedder(tiny_youtu_dir: str) -> None:
    function = YoutuEmbeddingFunction(
        tiny_youtu_dir,
        device="cpu",
        dtype="float32",
        max_length=200,
        batch_size=3,
        max_batch_tokens=500,
        query_instruction="STSB",  # symmetric C-MTEB task: both sides carry it
        document_instruction="STSB",
    )
    config = json.loads(json.dumps(function.get_config()))
    assert config["model_name_or_path"] == tiny_youtu_dir
    assert config["query_instruction"] == config["document_instruction"] != ""

    rebuilt = YoutuEmbeddingFunction.build_from_config(config)
    old, new = function.embedder, rebuilt.embedder
    assert new.backbone is old.backbone
    assert (new.query_prefix, new.document_prefix) == (old.query_prefix, old.document_prefix)
    assert (new.max_length, new.batch_size, new.max_batch_tokens) == (200, 3, 500)
    assert new.pooling == "text"
    assert rebuilt.get_config() == config
    assert np.abs(np.stack(rebuilt(DOCUMENTS)) - np.stack(function(DOCUMENTS))).max() == 0


def test_minilm_config_keeps_its_profile(minilm: YoutuEmbedder) -> None:
    config = YoutuEmbeddingFunction.from_embedder(minilm).get_config()
    assert config["model_name_or_path"] == MINILM
    assert (config["query_instruction"], config["pooling"], config["max_length"]) == (
        "",
        "all",
        256,
    )
    rebuilt = YoutuEmbeddingFunction.build_from_config(config).embedder
    assert rebuilt.backbone is minilm.backbone and rebuilt.query_prefix == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_collection_made_on_a_gpu_opens_on_a_cpu(minilm: YoutuEmbedder) -> None:
    config = YoutuEmbeddingFunction.from_embedder(minilm).get_config()
    config.update(device="cuda", dtype="bfloat16")
    rebuilt = YoutuEmbeddingFunction.build_from_config(config).embedder
    assert rebuilt.backbone.device.type != "cuda"
    assert rebuilt.backbone.dtype == torch.float32


def test_collection_uses_the_function_and_its_space(minilm: YoutuEmbedder, tmp_path: Path) -> None:
    client = chromadb.PersistentClient(path=str(tmp_path))
    collection = client.create_collection(
        "space_default",
        embedding_function=YoutuEmbeddingFunction.from_embedder(minilm),  # type: ignore[arg-type]
    )
    assert collection.configuration_json["hnsw"]["space"] == "cosine"
    collection.add(ids=list(CORPUS), documents=list(CORPUS.values()))
    stored = collection.get(ids=list(CORPUS), include=["embeddings"])["embeddings"]
    assert np.abs(np.asarray(stored) - minilm.encode_documents(list(CORPUS.values()))).max() <= 1e-6


# Runs in a fresh interpreter: reopen both collections by name only, so Chroma must rebuild the
# function from its stored config, and report what the queries returned. The frameworks are
# blocked to show the core and its Chroma function need neither.
_REOPEN = textwrap.dedent(
    """
    import json, sys
    for blocked in ("langchain", "langchain_youtu", "llama_index"):
        sys.modules[blocked] = None
    import chromadb
    import youtu_rag  # registers YoutuEmbeddingFunction with Chroma

    client = chromadb.PersistentClient(path=sys.argv[1])
    report = {}
    for name, questions in json.loads(sys.argv[2]).items():
        collection = client.get_collection(name)
        result = collection.query(query_texts=questions, n_results=2, include=["distances"])
        function = collection.configuration["embedding_function"]
        report[name] = {
            "function": type(function).__name__,
            "config": function.get_config(),
            "ids": result["ids"],
            "distances": result["distances"],
            "query_vectors": [row.tolist() for row in function.embed_query(questions)],
        }
    print(json.dumps(report))
    """
)


def test_a_new_process_reopens_the_collection_and_queries_it(
    minilm: YoutuEmbedder, tiny_youtu_dir: str, tmp_path: Path
) -> None:
    tiny = YoutuEmbedder(**tiny_options(tiny_youtu_dir))
    tiny_ids = [f"d{i}" for i in range(len(DOCUMENTS))]
    stored_tiny = dict(zip(tiny_ids, tiny.encode_documents(DOCUMENTS), strict=True))
    client = chromadb.PersistentClient(path=str(tmp_path))
    for name, embedder, ids, texts in [
        ("minilm", minilm, list(CORPUS), list(CORPUS.values())),
        ("tiny_youtu", tiny, tiny_ids, DOCUMENTS),
    ]:
        collection = client.create_collection(
            name,
            embedding_function=YoutuEmbeddingFunction.from_embedder(embedder),  # type: ignore[arg-type]
            configuration={"hnsw": {"space": "cosine"}},
        )
        collection.add(ids=ids, documents=texts)

    questions = {"minilm": list(QUESTIONS), "tiny_youtu": QUERIES}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    completed = subprocess.run(
        [sys.executable, "-c", _REOPEN, str(tmp_path), json.dumps(questions)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])

    mini = report["minilm"]
    assert mini["function"] == "YoutuEmbeddingFunction"
    assert [ids[0] for ids in mini["ids"]] == list(QUESTIONS.values())
    assert (
        np.abs(np.asarray(mini["query_vectors"]) - minilm.encode_queries(list(QUESTIONS))).max()
        <= 1e-6
    )

    youtu = report["tiny_youtu"]
    assert youtu["config"]["query_instruction"] == INSTRUCTION
    query_vectors = np.asarray(youtu["query_vectors"], dtype=np.float32)
    expected_queries = tiny.encode_queries(QUERIES)
    assert np.abs(query_vectors - expected_queries).max() <= 1e-6
    # The distances Chroma returned come from the instructed query vector, not the plain one.
    plain_queries = tiny.encode_documents(QUERIES)
    gaps = []
    for row, (ids, distances) in enumerate(zip(youtu["ids"], youtu["distances"], strict=True)):
        for doc_id, distance in zip(ids, distances, strict=True):
            instructed = 1 - float(expected_queries[row] @ stored_tiny[doc_id])
            plain = 1 - float(plain_queries[row] @ stored_tiny[doc_id])
            assert distance == pytest.approx(instructed, abs=1e-5)
            gaps.append(abs(distance - plain))
    assert max(gaps) > 1e-3
