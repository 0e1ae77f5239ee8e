"""Print the chunking figures of docs/chunking.md: how many chunks end at sentence or clause
punctuation (or a paragraph end), and how many cuts fall inside a run of digits or Latin
letters, on the generated Chinese and English corpora, for the default splitter and the one
before it. Run: ``python -m tests.chunking_figures``."""

from __future__ import annotations

from tests.corpora import chinese_corpus, english_corpus
from tests.test_chunking import CLAUSE_ENDS, SENTENCE_ENDS, cuts_inside_runs, ends_well, locate
from youtu_rag import MINILM, YoutuEmbedder
from youtu_rag.ingest.chunking import make_chunker


def main() -> None:
    embedder = YoutuEmbedder(MINILM, device="cpu")
    corpora = [
        ("Chinese", chinese_corpus(100_000), SENTENCE_ENDS + CLAUSE_ENDS),
        ("English", english_corpus(100_000), SENTENCE_ENDS),
    ]
    for name, corpus, punctuation in corpora:
        for separators in ("default", "langchain"):
            chunker = make_chunker(embedder, chunk_size=128, separators=separators)
            chunks = [chunk.text for chunk in chunker.split_text(corpus)]
            spans = locate(corpus, chunks)
            well = sum(ends_well(corpus, end, punctuation) for _, end in spans)
            inside = cuts_inside_runs(corpus, spans)
            print(
                f"{name} {len(corpus.encode('utf-8'))} bytes, {separators}: {len(chunks)} chunks, "
                f"{well} ({well / len(chunks):.1%}) end at punctuation or a paragraph end, "
                f"{len(inside)} cuts inside a run {inside[:2]}"
            )


if __name__ == "__main__":
    main()
