"""Texts the adapter tests share: instructed queries and awkward documents for vector equality
on the tiny model, and a small corpus where each question has exactly one right passage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from youtu_rag import YoutuEmbedder
from youtu_rag.index.store import ChromaStore

INSTRUCTION = "Given a question about the weather, find the sentence that answers it"
QUERIES = ["What's the weather like?", "结算业务系统用户使用", "sky"]
DOCUMENTS = [
    "The weather is lovely today.",
    "查询出该时间范围内到期的账户冻结列表。" * 5,
    "He drove to the stadium.",
    "x",
    "Would you want to play a game?",
    "It's so sunny outside!",
    "Retrieval augmented generation feeds the best passages to a chat model.",
]
CORPUS = {
    "cats": "Cats purr when they are content and knead soft blankets with their paws.",
    "stocks": "The stock market fell sharply on Monday after the central bank raised rates.",
    "plants": "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar.",
    "football": "The striker scored twice in the second half to win the cup final.",
}
QUESTIONS = {
    "How do plants make food from light?": "plants",
    "Why did share prices drop?": "stocks",
    "Who won the soccer match?": "football",
}


def tiny_options(tiny_youtu_dir: str, **changes: Any) -> dict[str, Any]:
    """Options of the tiny model with a non-empty query instruction of our own."""
    return {
        "model_name_or_path": tiny_youtu_dir,
        "device": "cpu",
        "batch_size": 2,
        "query_instruction": INSTRUCTION,
        **changes,
    }


def passage_store(
    embedder: YoutuEmbedder,
    directory: Path,
    passages: dict[str, tuple[str, str]],
    **metadata: str | int,
) -> ChromaStore:
    """A new on-disk collection holding ``passages`` (id -> (text, source)), each record's
    metadata its ``source`` plus ``metadata``."""
    store = ChromaStore.open(embedder, persist_dir=directory / "db")
    store.upsert(
        list(passages),
        [text for text, _ in passages.values()],
        [{"source": source, **metadata} for _, source in passages.values()],
    )
    return store
