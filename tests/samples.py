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


def pdf_pages(*pages: str) -> bytes:
    """A PDF with one page per text, in Helvetica, with a correct cross-reference table."""
    count = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode(),
    ]
    font = 3 + 2 * count
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
