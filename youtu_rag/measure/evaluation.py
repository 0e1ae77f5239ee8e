"""Retrieval quality on a BEIR-format dataset, computed exactly as MTEB does.

MTEB's figures are the ones users compare embedders by, so every choice here follows it: a
document is embedded as ``(title + " " + text).strip()``, a query as it is, the score is cosine
similarity over the whole corpus (no document excluded), and the metrics have pytrec_eval's
(trec_eval's) semantics: ties in score broken by document id, descending; nDCG with linear
gains; Recall@k over the judged relevant documents; MRR@k the reciprocal rank of the first
relevant document in the top k. A query absent from the run is skipped, as trec_eval does.

``via_chroma`` runs the same queries through a real Chroma HNSW index instead, and reports how
much of the exact top-k the approximate search kept.

:func:`evaluate_modes` scores the lexical ranking (the BM25 index and analyzer a store keeps,
:mod:`youtu_rag.index.lexical`) and the hybrid one (reciprocal rank fusion of both, as
``ChromaStore.search`` fuses) beside the dense one, embedding the corpus once.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import math
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from youtu_rag.backends.protocol import Embedder, TextReranker
from youtu_rag.index.analyzer import Analyzer
from youtu_rag.index.fusion import SEARCH_MODES, Fusion, check_mode, reciprocal_rank_fusion
from youtu_rag.index.lexical import LexicalIndex

#: query id -> document id -> graded relevance (>= 1 is relevant).
Qrels = dict[str, dict[str, int]]
#: query id -> document id -> similarity score (higher is better).
Run = dict[str, dict[str, float]]

DEFAULT_K_VALUES = (10, 100)
_EVAL_COLLECTION = "beir_eval"


@dataclass(frozen=True)
class BeirDataset:
    """The judged queries of one split, the whole corpus, and the judgements."""

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: Qrels


def document_text(title: str, text: str) -> str:
    """MTEB's rule for a retrieval document.

    Args:
        title: the document's title, ``""`` for none.
        text: its body.

    Returns:
        ``title + " " + text``, stripped.
    """
    return (title + " " + text).strip()


def _read_jsonl(path: Path, fields: Sequence[str]) -> Iterable[tuple[int, dict[str, object]]]:
    """(line number, record) of each non-blank line; a bad line is an error naming path:line."""
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(
                        f"{path}:{number}: not valid JSON ({error.msg} at column {error.colno})"
                    ) from None
                if not isinstance(record, dict):
                    raise ValueError(f"{path}:{number}: not a JSON object")
                for name in fields:
                    value = record.get(name)
                    if not isinstance(value, str | int) or isinstance(value, bool):
                        raise ValueError(f"{path}:{number}: the record has no {name!r}")
                yield number, record
    except UnicodeDecodeError as error:
        raise ValueError(_not_utf8(path, error)) from None


def _not_utf8(path: Path, error: UnicodeDecodeError) -> str:
    return f"{path}: not valid UTF-8 ({error.reason} at byte {error.start})"


def load_beir(directory: str | Path, split: str = "test") -> BeirDataset:
    """Read ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/{split}.tsv`` from ``directory``.

    Only the queries judged in the split are kept (SciFact ships 1,109 claims but judges 300);
    a judgement naming an unknown query or document is an error, since it would silently cap
    the reachable recall, and so is a split that judges nothing. Errors name the file and line.

    Args:
        directory: the BEIR-format folder.
        split: which ``qrels/{split}.tsv`` to read.

    Returns:
        The corpus (documents as MTEB embeds them), the judged queries and the judgements.

    Raises:
        FileNotFoundError: one of the three files is missing.
        ValueError: a line is malformed, or a judgement names an unknown query or document.
    """
    root = Path(directory)
    qrels_path = root / "qrels" / f"{split}.tsv"
    for path in (root / "corpus.jsonl", root / "queries.jsonl", qrels_path):
        if not path.is_file():
            raise FileNotFoundError(f"not a BEIR dataset: {path} is missing")
    corpus = {
        str(record["_id"]): document_text(str(record.get("title") or ""), str(record["text"]))
        for _, record in _read_jsonl(root / "corpus.jsonl", ("_id", "text"))
    }
    qrels: Qrels = {}
    first_line: dict[str, int] = {}
    try:
        with qrels_path.open(encoding="utf-8", newline="") as handle:
            rows = csv.reader(handle, delimiter="\t")
            header = next(rows, None)
            if header is None or [cell.strip() for cell in header[:3]] != [
                "query-id",
                "corpus-id",
                "score",
            ]:
                raise ValueError(
                    f"{qrels_path}:1: must be the header query-id, corpus-id, score (tab-separated)"
                )
            for number, row in enumerate(rows, start=2):
                if not row or not "".join(row).strip():
                    continue
                if len(row) < 3:
                    raise ValueError(f"{qrels_path}:{number}: {len(row)} columns, expected 3")
                query_id, doc_id, score = row[0].strip(), row[1].strip(), row[2].strip()
                if doc_id not in corpus:
                    raise ValueError(f"{qrels_path}:{number}: unknown document {doc_id!r}")
                try:
                    grade = int(score)
                except ValueError:
                    raise ValueError(
                        f"{qrels_path}:{number}: score {score!r} is not an integer"
                    ) from None
                qrels.setdefault(query_id, {})[doc_id] = grade
                first_line.setdefault(query_id, number)
    except UnicodeDecodeError as error:
        raise ValueError(_not_utf8(qrels_path, error)) from None
    if not qrels:
        raise ValueError(f"{qrels_path}: judges no query (no rows after the header)")
    if not any(grade >= 1 for judged in qrels.values() for grade in judged.values()):
        raise ValueError(f"{qrels_path}: no judgement has a score of 1 or more (nothing relevant)")
    all_queries = {
        str(record["_id"]): str(record["text"])
        for _, record in _read_jsonl(root / "queries.jsonl", ("_id", "text"))
    }
    missing = [query_id for query_id in qrels if query_id not in all_queries]
    if missing:
        raise ValueError(
            f"{qrels_path}:{first_line[missing[0]]}: unknown query {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    queries = {query_id: all_queries[query_id] for query_id in qrels}
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels)


#: Corpus documents ``limit_queries`` keeps per kept query besides the judged ones.
DISTRACTORS_PER_QUERY = 100


def limit_queries(dataset: BeirDataset, limit: int) -> BeirDataset:
    """A quick subset: the first ``limit`` judged queries, in ``qrels`` file order; every
    document judged for them (any score); and, as distractors, the first
    ``DISTRACTORS_PER_QUERY * limit`` other documents in ``corpus.jsonl`` order.

    Scores on it are higher than on the whole corpus (fewer documents compete): use it to check
    that a setup works, and compare figures only between runs with the same ``limit``.

    Args:
        dataset: from :func:`load_beir`.
        limit: queries to keep, at least 1.

    Returns:
        The subset; the whole dataset when it has no more than ``limit`` queries.

    Raises:
        ValueError: ``limit`` below 1.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    query_ids = list(dataset.queries)[:limit]
    if len(query_ids) == len(dataset.queries):
        return dataset
    judged = {doc_id for query_id in query_ids for doc_id in dataset.qrels[query_id]}
    others = (doc_id for doc_id in dataset.corpus if doc_id not in judged)
    distractors = set(itertools.islice(others, DISTRACTORS_PER_QUERY * len(query_ids)))
    return BeirDataset(
        corpus={
            doc_id: text
            for doc_id, text in dataset.corpus.items()
            if doc_id in judged or doc_id in distractors
        },
        queries={query_id: dataset.queries[query_id] for query_id in query_ids},
        qrels={query_id: dataset.qrels[query_id] for query_id in query_ids},
    )


# --- metrics (trec_eval semantics) -------------------------------------------------------------


def rank(scores: Mapping[str, float]) -> list[str]:
    """Document ids best first; equal scores in descending id order, as trec_eval sorts them.

    Args:
        scores: document id -> score.

    Returns:
        The ids, ranked.
    """
    by_id = sorted(scores, reverse=True)
    return sorted(by_id, key=lambda doc_id: scores[doc_id], reverse=True)


def ndcg_at_k(relevance: Mapping[str, int], ranking: Sequence[str], k: int) -> float:
    """nDCG@k with gain equal to the relevance grade (negative grades count as 0).

    Args:
        relevance: document id -> judged grade.
        ranking: document ids, best first.
        k: the cut-off.

    Returns:
        The score in [0, 1]; 0 when nothing relevant is judged.
    """
    dcg = sum(
        max(relevance.get(doc_id, 0), 0) / math.log2(position + 2)
        for position, doc_id in enumerate(ranking[:k])
    )
    ideal_gains = sorted((max(grade, 0) for grade in relevance.values()), reverse=True)[:k]
    ideal = sum(gain / math.log2(position + 2) for position, gain in enumerate(ideal_gains))
    return dcg / ideal if ideal > 0 else 0.0


def recall_at_k(relevance: Mapping[str, int], ranking: Sequence[str], k: int) -> float:
    """Share of the relevant documents (grade >= 1) found in the top k, in [0, 1]; arguments
    as for :func:`ndcg_at_k`, 0 when nothing relevant is judged."""
    relevant = {doc_id for doc_id, grade in relevance.items() if grade >= 1}
    if not relevant:
        return 0.0
    return sum(1 for doc_id in ranking[:k] if doc_id in relevant) / len(relevant)


def mrr_at_k(relevance: Mapping[str, int], ranking: Sequence[str], k: int) -> float:
    """Reciprocal rank of the first relevant document in the top k, 0 when none is there;
    arguments as for :func:`ndcg_at_k`."""
    for position, doc_id in enumerate(ranking[:k], start=1):
        if relevance.get(doc_id, 0) >= 1:
            return 1.0 / position
    return 0.0


def score_run(
    qrels: Qrels, run: Run, k_values: Sequence[int] = DEFAULT_K_VALUES
) -> dict[str, float]:
    """Mean ``ndcg@k``, ``recall@k`` and ``mrr@k`` over the queries judged and run.

    Args:
        qrels: query id -> document id -> grade.
        run: query id -> document id -> score.
        k_values: the cut-offs.

    Returns:
        Metric name (``"ndcg@10"``, ...) -> mean over the queries.
    """
    evaluated = [query_id for query_id in run if query_id in qrels]
    totals = {f"{name}@{k}": 0.0 for name in ("ndcg", "recall", "mrr") for k in k_values}
    for query_id in evaluated:
        ranking = rank(run[query_id])
        relevance = qrels[query_id]
        for k in k_values:
            totals[f"ndcg@{k}"] += ndcg_at_k(relevance, ranking, k)
            totals[f"recall@{k}"] += recall_at_k(relevance, ranking, k)
            totals[f"mrr@{k}"] += mrr_at_k(relevance, ranking, k)
    count = max(len(evaluated), 1)
    return {name: total / count for name, total in totals.items()}


# --- search ------------------------------------------------------------------------------------


def exact_search(
    query_vectors: np.ndarray,
    query_ids: Sequence[str],
    doc_vectors: np.ndarray,
    doc_ids: Sequence[str],
    k: int,
    chunk: int = 1024,
) -> Run:
    """Brute-force top-k by inner product (cosine, for unit vectors), over every document.

    Args:
        query_vectors: (queries, dim) array.
        query_ids: their ids, in row order.
        doc_vectors: (documents, dim) array.
        doc_ids: their ids, in row order.
        k: results per query.
        chunk: queries scored per matrix product (bounds memory).

    Returns:
        Query id -> document id -> score for the top k.
    """
    docs = torch.from_numpy(np.ascontiguousarray(doc_vectors, dtype=np.float32))
    top = min(k, len(doc_ids))
    run: Run = {}
    for start in range(0, len(query_ids), chunk):
        queries = torch.from_numpy(
            np.ascontiguousarray(query_vectors[start : start + chunk], dtype=np.float32)
        )
        scores, indices = torch.topk(queries @ docs.T, top, dim=1)
        for row, query_id in enumerate(query_ids[start : start + chunk]):
            run[query_id] = {
                doc_ids[index]: score
                for index, score in zip(indices[row].tolist(), scores[row].tolist(), strict=True)
            }
    return run


def chroma_search(
    query_vectors: np.ndarray,
    query_ids: Sequence[str],
    doc_vectors: np.ndarray,
    doc_ids: Sequence[str],
    k: int,
    path: str | Path,
) -> Run:
    """Top-k through a fresh on-disk Chroma collection (HNSW, cosine space) at ``path``.

    Takes :func:`exact_search`'s arguments, with ``path`` (the database directory) in place of
    ``chunk``, and returns the same kind of run: scores are ``1 - distance``, the cosine
    similarity. A collection left there by an earlier evaluation is replaced.
    """
    import chromadb
    from chromadb.config import Settings
    from chromadb.errors import NotFoundError

    client = chromadb.PersistentClient(
        path=str(path), settings=Settings(anonymized_telemetry=False)
    )
    with contextlib.suppress(NotFoundError):
        client.delete_collection(_EVAL_COLLECTION)
    collection = client.create_collection(
        _EVAL_COLLECTION, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
    )
    step = client.get_max_batch_size()
    for start in range(0, len(doc_ids), step):
        collection.add(
            ids=list(doc_ids[start : start + step]),
            embeddings=np.ascontiguousarray(doc_vectors[start : start + step], dtype=np.float32),
        )
    top = min(k, len(doc_ids))
    run: Run = {}
    for start in range(0, len(query_ids), step):
        result = collection.query(
            query_embeddings=np.ascontiguousarray(
                query_vectors[start : start + step], dtype=np.float32
            ),
            n_results=top,
            include=["distances"],
        )
        distances = result["distances"] or []
        for query_id, ids, dists in zip(
            query_ids[start : start + step], result["ids"], distances, strict=True
        ):
            run[query_id] = {
                doc_id: 1.0 - float(distance) for doc_id, distance in zip(ids, dists, strict=True)
            }
    return run


def overlap_at_k(approximate: Run, exact: Run, k: int) -> float:
    """Mean share of each query's exact top k that the approximate search also returned.

    Args:
        approximate: the run to check.
        exact: the exact run.
        k: the cut-off.

    Returns:
        The mean share in [0, 1].
    """
    shares = []
    for query_id, scores in exact.items():
        truth = set(rank(scores)[:k])
        found = set(rank(approximate.get(query_id, {}))[:k])
        shares.append(len(truth & found) / max(len(truth), 1))
    return float(np.mean(shares)) if shares else 0.0


# --- the whole evaluation ------------------------------------------------------------------------


def _embed(
    embedder: Embedder, dataset: BeirDataset
) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """(document ids, their vectors, query ids, their vectors), in the dataset's order."""
    doc_ids = list(dataset.corpus)
    query_ids = list(dataset.queries)
    doc_vectors = embedder.encode_documents([dataset.corpus[doc_id] for doc_id in doc_ids])
    query_vectors = embedder.encode_queries([dataset.queries[query_id] for query_id in query_ids])
    return doc_ids, doc_vectors, query_ids, query_vectors


def evaluate(
    embedder: Embedder,
    dataset: BeirDataset,
    *,
    k_values: Sequence[int] = DEFAULT_K_VALUES,
    via_chroma: bool = False,
    chroma_path: str | Path | None = None,
) -> dict[str, float | int]:
    """Embed the corpus and the judged queries, search, and score; MTEB's protocol.

    Args:
        embedder: the embedder under test.
        dataset: from :func:`load_beir`.
        k_values: the cut-offs.
        via_chroma: search through a Chroma HNSW index instead of exactly.
        chroma_path: where that index goes (default: a temporary directory).

    Returns:
        The metrics (``ndcg@10``, ``recall@100``, ``mrr@10``, ... for each k), ``queries``,
        ``documents`` and ``seconds`` (embedding and search, not model loading). With
        ``via_chroma`` the metrics come from the Chroma search, the exact search's are kept
        under ``exact_*`` keys, and ``hnsw_overlap@k`` is the share of the exact top k that
        HNSW returned.
    """
    started = time.perf_counter()
    doc_ids, doc_vectors, query_ids, query_vectors = _embed(embedder, dataset)
    depth = max(k_values)
    exact = exact_search(query_vectors, query_ids, doc_vectors, doc_ids, depth)
    result: dict[str, float | int] = {}
    if via_chroma:
        with tempfile.TemporaryDirectory(prefix="youtu_rag_eval_") as scratch:
            approximate = chroma_search(
                query_vectors, query_ids, doc_vectors, doc_ids, depth, chroma_path or scratch
            )
        result.update(score_run(dataset.qrels, approximate, k_values))
        result.update(
            {
                f"exact_{name}": value
                for name, value in score_run(dataset.qrels, exact, k_values).items()
            }
        )
        result.update({f"hnsw_overlap@{k}": overlap_at_k(approximate, exact, k) for k in k_values})
    else:
        result.update(score_run(dataset.qrels, exact, k_values))
    result["queries"] = len(query_ids)
    result["documents"] = len(doc_ids)
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


# --- lexical and hybrid ------------------------------------------------------------------------


def lexical_search(
    dataset: BeirDataset, k: int, analyzer: Analyzer | None = None, path: str | Path | None = None
) -> Run:
    """Top-k by BM25 through the lexical index a store keeps, built over the whole corpus.

    Args:
        dataset: from :func:`load_beir`.
        k: results per query.
        analyzer: text -> terms (default: the stores' default).
        path: where the index goes (default: a temporary directory).

    Returns:
        Query id -> document id -> BM25 score.
    """
    with tempfile.TemporaryDirectory(prefix="youtu_rag_lexical_") as scratch:
        index = LexicalIndex(Path(path or scratch), analyzer)
        try:
            index.rebuild("beir", dataset.corpus.items())
            return {
                query_id: {hit.id: hit.score for hit in index.search(text, k)}
                for query_id, text in dataset.queries.items()
            }
        finally:
            index.close()


def fuse_runs(dense: Run, lexical: Run, fusion: Fusion | None = None) -> Run:
    """Reciprocal rank fusion of two runs, per query, over each side's top ``candidates``.

    Args:
        dense: the dense run.
        lexical: the lexical run.
        fusion: k, weights and candidates per side (default :class:`Fusion`).

    Returns:
        Query id -> document id -> fused score.
    """
    fusion = fusion or Fusion()
    fused: Run = {}
    for query_id in dense.keys() | lexical.keys():
        fused[query_id] = dict(
            reciprocal_rank_fusion(
                [
                    (rank(dense.get(query_id, {}))[: fusion.candidates], fusion.dense_weight),
                    (rank(lexical.get(query_id, {}))[: fusion.candidates], fusion.lexical_weight),
                ],
                fusion.k,
            )
        )
    return fused


def evaluate_modes(
    embedder: Embedder | None,
    dataset: BeirDataset,
    modes: Sequence[str] = SEARCH_MODES,
    *,
    k_values: Sequence[int] = DEFAULT_K_VALUES,
    fusion: Fusion | None = None,
    analyzer: Analyzer | None = None,
    reranker: TextReranker | None = None,
    candidates: int = 20,
) -> dict[str, object]:
    """Score several search modes on one dataset, embedding the corpus once.

    Dense is exact search, as :func:`evaluate` does; lexical is the stores' BM25 index; hybrid
    fuses the two with reciprocal rank fusion.

    Args:
        embedder: the embedder (None when only ``lexical`` is asked for).
        dataset: from :func:`load_beir`.
        modes: some of ``dense``, ``lexical``, ``hybrid``.
        k_values: the cut-offs.
        fusion: how hybrid fuses (default :class:`Fusion`: k 60, 1:1, 100 per side).
        analyzer: the lexical analyzer (default: English stemming, CJK bigrams).
        reranker: a second stage: each mode is scored again as ``MODE+rerank``, its top
            ``candidates`` reordered by the reranker (see :func:`rerank_run`).
        candidates: first-stage documents the reranker reads per query.

    Returns:
        ``modes`` (mode -> metrics), ``queries``, ``documents`` and ``seconds``.
    """
    wanted = [check_mode(mode) for mode in modes]
    started = time.perf_counter()
    fusion = fusion or Fusion()
    depth = max(*k_values, fusion.candidates)
    runs: dict[str, Run] = {}
    if "dense" in wanted or "hybrid" in wanted:
        if embedder is None:
            raise ValueError("dense and hybrid evaluation need an embedder")
        doc_ids, doc_vectors, query_ids, query_vectors = _embed(embedder, dataset)
        runs["dense"] = exact_search(query_vectors, query_ids, doc_vectors, doc_ids, depth)
    if "lexical" in wanted or "hybrid" in wanted:
        runs["lexical"] = lexical_search(dataset, depth, analyzer)
    if "hybrid" in wanted:
        runs["hybrid"] = fuse_runs(runs["dense"], runs["lexical"], fusion)
    scored: list[str] = list(wanted)
    if reranker is not None:
        for mode in wanted:
            runs[f"{mode}+rerank"] = rerank_run(runs[mode], dataset, reranker, candidates)
            scored.append(f"{mode}+rerank")
    return {
        "modes": {mode: score_run(dataset.qrels, runs[mode], k_values) for mode in scored},
        "queries": len(dataset.queries),
        "documents": len(dataset.corpus),
        "seconds": round(time.perf_counter() - started, 3),
    }


def rerank_run(run: Run, dataset: BeirDataset, reranker: TextReranker, candidates: int) -> Run:
    """``run`` with each query's top ``candidates`` documents reordered by ``reranker`` (their
    order below them kept): what the second stage of a search does.

    Returns:
        The new run; reranked documents score above the rest.
    """
    reranked: Run = {}
    for query_id, scores in run.items():
        ranking = rank(scores)
        top = ranking[:candidates]
        new = reranker.score(dataset.queries[query_id], [dataset.corpus[d] for d in top])
        ordered = [top[i] for i in sorted(range(len(top)), key=lambda i: -new[i])]
        ordered += ranking[candidates:]
        reranked[query_id] = {doc: float(len(ordered) - place) for place, doc in enumerate(ordered)}
    return reranked
