"""Checkpoints that describe themselves in sentence-transformers files embed as
sentence-transformers embeds them: a directory copy of MiniLM, and tiny random BERT checkpoints
built with sentence-transformers' own modules and saved with ``SentenceTransformer.save``."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
from transformers import AutoTokenizer, BertConfig, BertModel

from youtu_rag import MINILM, YoutuEmbedder, get_profile
from youtu_rag.index.store import POOLING_KEY, fingerprint
from youtu_rag.measure.seed_baseline import seed_encode
from youtu_rag.model.instructions import format_prefix
from youtu_rag.model.st_config import UnsupportedCheckpointError

QUERIES = [
    "What's the weather like?",
    "结算业务系统用户使用",
    "how do plants turn light into sugar " * 12,
    "sky",
]
DOCUMENTS = [
    "The weather is lovely today.",
    "查询出该时间范围内到期的账户冻结列表。" * 4,
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar. " * 10,
    "x",
    "He drove to the stadium.",
]


@dataclass(frozen=True)
class TinyCheckpoint:
    """One sentence-transformers pipeline over the tiny BERT."""

    pooling_mode: str
    include_prompt: bool = True
    prompts: dict[str, str] = field(default_factory=dict)
    normalize: bool = False
    max_seq_length: int = 64
    #: The prompt name ``encode`` gets for documents (``None``: no prompt).
    document_prompt: str | None = None


CHECKPOINTS = {
    # bge-style: CLS, an instruction on queries only, normalised.
    "cls": TinyCheckpoint(
        "cls",
        prompts={"query": "Represent this sentence for searching relevant passages: "},
        normalize=True,
    ),
    # Instruction models: the prompt steers the model but is not pooled; documents have none,
    # so every one of their tokens is ([CLS] included).
    "mean_without_prompt": TinyCheckpoint(
        "mean", include_prompt=False, prompts={"query": "Instruct: find the answer\nQuery: "}
    ),
    # Decoder-style embedders pool the last token.
    "lasttoken": TinyCheckpoint("lasttoken", prompts={"query": "query: "}),
    # e5-style: both sides prefixed, prompt pooled, short truncation.
    "mean_with_prompt": TinyCheckpoint(
        "mean",
        prompts={"query": "query: ", "passage": "passage: "},
        normalize=True,
        max_seq_length=16,
        document_prompt="passage",
    ),
}


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT with MiniLM's tokenizer, as a plain transformers checkpoint."""
    directory = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = AutoTokenizer.from_pretrained(get_profile(MINILM).source)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_checkpoint(base: Path, spec: TinyCheckpoint, directory: Path) -> Path:
    """``spec`` built from sentence-transformers' modules and saved by ``SentenceTransformer``."""
    transformer = Transformer(str(base), max_seq_length=spec.max_seq_length)
    modules: list[Any] = [
        transformer,
        Pooling(
            transformer.get_embedding_dimension(),
            pooling_mode=spec.pooling_mode,  # type: ignore[arg-type]
            include_prompt=spec.include_prompt,
        ),
    ]
    if spec.normalize:
        modules.append(Normalize())
    SentenceTransformer(modules=modules, prompts=spec.prompts, device="cpu").save(str(directory))
    return directory


@pytest.fixture(scope="module")
def checkpoints(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {
        name: save_checkpoint(tiny_bert_dir, spec, tmp_path_factory.mktemp(name))
        for name, spec in CHECKPOINTS.items()
    }


def st_vectors(model: SentenceTransformer, texts: list[str], prompt_name: str | None) -> Any:
    # Ours are always unit length; for a checkpoint without Normalize, compare with
    # sentence-transformers' vectors normalised (same direction, same cosine similarities).
    return model.encode(texts, prompt_name=prompt_name, normalize_embeddings=True)


def assert_same_as_sentence_transformers(
    embedder: YoutuEmbedder, directory: Path, document_prompt: str | None
) -> None:
    reference = SentenceTransformer(str(directory), device="cpu")
    query_prompt = "query" if reference.prompts.get("query") else None
    expected_queries = st_vectors(reference, QUERIES, query_prompt)
    expected_documents = st_vectors(reference, DOCUMENTS, document_prompt)
    assert np.abs(embedder.encode_queries(QUERIES) - expected_queries).max() <= 1e-5
    assert np.abs(embedder.encode_documents(DOCUMENTS) - expected_documents).max() <= 1e-5


@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_tiny_checkpoints_embed_as_sentence_transformers(
    name: str, checkpoints: dict[str, Path]
) -> None:
    spec = CHECKPOINTS[name]
    embedder = YoutuEmbedder(str(checkpoints[name]), device="cpu", batch_size=2)
    assert embedder.pooling_mode == spec.pooling_mode
    assert embedder.pooling == ("all" if spec.include_prompt else "exclude_prompt")
    assert embedder.query_prefix == spec.prompts.get("query", "")
    assert embedder.max_length == spec.max_seq_length
    # A collection records the pooling mode too, so a CLS index is not searched with means.
    mode = "" if spec.pooling_mode == "mean" else f"{spec.pooling_mode} of "
    assert fingerprint(embedder)[POOLING_KEY] == mode + embedder.pooling
    assert_same_as_sentence_transformers(embedder, checkpoints[name], spec.document_prompt)


def test_the_rules_say_where_they_came_from(checkpoints: dict[str, Path]) -> None:
    embedder = YoutuEmbedder(str(checkpoints["mean_without_prompt"]), device="cpu")
    rules = embedder.info()["rules"]
    assert rules["pooling_mode"] == {"value": "mean", "from": "1_Pooling/config.json"}
    assert rules["pooling"]["from"] == "1_Pooling/config.json (include_prompt=false)"
    assert rules["max_length"]["from"] == "tokenizer model_max_length"
    assert "no Normalize" in rules["normalize"]["from"]
    assert "pooling='exclude_prompt' [1_Pooling/config.json" in repr(embedder)
    # sentence-transformers 6 saves an empty "document" prompt beside "passage"; the named
    # document prompt is the first non-empty of document, passage, corpus.
    e5 = YoutuEmbedder(str(checkpoints["mean_with_prompt"]), device="cpu")
    assert e5.info()["rules"]["document_prefix"] == {
        "value": "passage: ",
        "from": "config_sentence_transformers.json prompts['passage']",
    }
    assert "the checkpoint agrees" in e5.info()["rules"]["normalize"]["from"]


def test_explicit_arguments_win(checkpoints: dict[str, Path]) -> None:
    embedder = YoutuEmbedder(
        str(checkpoints["cls"]),
        device="cpu",
        pooling_mode="mean",
        max_length=8,
        query_instruction="",
    )
    rules = embedder.info()["rules"]
    assert (embedder.pooling_mode, embedder.max_length, embedder.query_prefix) == ("mean", 8, "")
    for rule in ("pooling_mode", "max_length", "query_prefix"):
        assert rules[rule]["from"] == "argument"
    assert rules["pooling"]["from"] == "1_Pooling/config.json (include_prompt=true)"
    # Mean over every token, truncated at 8: exactly what the checkpoint's transformer gives.
    reference = SentenceTransformer(str(checkpoints["cls"]), device="cpu")
    reference.max_seq_length = 8
    hidden = reference.encode(DOCUMENTS, output_value="token_embeddings")
    expected = np.stack([np.asarray(states.mean(dim=0)) for states in hidden])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.abs(embedder.encode_documents(DOCUMENTS) - expected).max() <= 1e-5


def test_a_directory_copy_of_minilm_embeds_as_sentence_transformers(tmp_path: Path) -> None:
    copy = Path(shutil.copytree(get_profile(MINILM).source, tmp_path / "minilm"))
    embedder = YoutuEmbedder(str(copy), device="cpu")
    assert embedder.model_name == str(copy)
    assert (embedder.pooling, embedder.max_length, embedder.query_prefix) == ("all", 256, "")
    assert embedder.info()["rules"]["max_length"]["from"] == (
        "sentence_bert_config.json max_seq_length"
    )
    assert_same_as_sentence_transformers(embedder, copy, None)


def test_a_checkpoint_without_sentence_transformers_files_gets_their_defaults(
    tiny_bert_dir: Path,
) -> None:
    """Mean over every token, no prompts: what ``SentenceTransformer`` builds for a plain
    transformers checkpoint (not the Youtu rules, which would drop the [CLS] and add an
    instruction)."""
    embedder = YoutuEmbedder(str(tiny_bert_dir), device="cpu", batch_size=2)
    assert (embedder.pooling, embedder.pooling_mode) == ("all", "mean")
    assert (embedder.query_prefix, embedder.document_prefix) == ("", "")
    assert "sentence-transformers default" in embedder.info()["rules"]["pooling"]["from"]
    assert_same_as_sentence_transformers(embedder, tiny_bert_dir, None)


def _edit_json(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("file", "change", "message"),
    [
        (
            "modules.json",
            lambda modules: modules.insert(
                2, {"name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
            ),
            "'sentence_transformers.models.Dense' is not supported",
        ),
        (
            "modules.json",
            lambda modules: modules.__setitem__(0, {**modules[0], "type": "my_code.Encoder"}),
            "'my_code.Encoder' is not supported",
        ),
        (
            "1_Pooling/config.json",
            lambda pooling: pooling.update(pooling_mode="max"),
            "pooling mode 'max' is not supported",
        ),
        (
            "1_Pooling/config.json",
            lambda pooling: pooling.update(pooling_mode=["mean", "cls"]),
            "pooling mode ['mean', 'cls'] is not supported",
        ),
        (
            "sentence_bert_config.json",
            lambda config: config.update(do_lower_case=True),
            "do_lower_case is not supported",
        ),
    ],
)
def test_pipelines_that_cannot_be_reproduced_are_refused(
    checkpoints: dict[str, Path], tmp_path: Path, file: str, change: Any, message: str
) -> None:
    copy = Path(shutil.copytree(checkpoints["lasttoken"], tmp_path / "edited"))
    _edit_json(copy / file, change)
    with pytest.raises(UnsupportedCheckpointError, match=message.replace("[", r"\[")):
        YoutuEmbedder(str(copy), device="cpu")


def test_a_utu_checkpoint_keeps_the_youtu_rules_under_its_own_files(
    tiny_youtu: YoutuEmbedder, tiny_youtu_dir: str, tmp_path: Path
) -> None:
    """The published Youtu-Embedding ships sentence-transformers files too: mean pooling with
    include_prompt false and the instruction as its query prompt. Its text-token rule (the BOS
    never pooled, prompt or not) and its instruction template stay the built-in ones."""
    copy = Path(shutil.copytree(tiny_youtu_dir, tmp_path / "utu"))
    task = "Given a question about the weather, find the sentence that answers it"
    (copy / "modules.json").write_text(
        json.dumps(
            [
                {
                    "idx": 0,
                    "name": "0",
                    "path": "",
                    "type": "sentence_transformers.models.Transformer",
                },
                {
                    "idx": 1,
                    "name": "1",
                    "path": "1_Pooling",
                    "type": "sentence_transformers.models.Pooling",
                },
                {
                    "idx": 2,
                    "name": "2",
                    "path": "2_Normalize",
                    "type": "sentence_transformers.models.Normalize",
                },
            ]
        )
    )
    (copy / "1_Pooling").mkdir()
    (copy / "1_Pooling" / "config.json").write_text(
        json.dumps({"embedding_dimension": 128, "pooling_mode": "mean", "include_prompt": False})
    )
    (copy / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": format_prefix(task), "document": ""}})
    )
    embedder = YoutuEmbedder(str(copy), device="cpu", batch_size=2)
    assert (embedder.pooling, embedder.query_task, embedder.document_prefix) == ("text", task, "")
    assert embedder.max_length == tiny_youtu.max_length
    assert "with the Youtu text-token rule" in embedder.info()["rules"]["pooling"]["from"]
    backbone = embedder.backbone
    expected = seed_encode(backbone.model, backbone.tokenizer, DOCUMENTS, "")
    assert np.abs(embedder.encode_documents(DOCUMENTS) - expected).max() <= 1e-5
    prefix = embedder.query_prefix
    expected = seed_encode(backbone.model, backbone.tokenizer, QUERIES, prefix)
    assert np.abs(embedder.encode_queries(QUERIES) - expected).max() <= 1e-5
