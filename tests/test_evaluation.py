"""Evaluation: metrics against pytrec_eval, the BEIR loader, search, and ``youtu-rag eval``."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval
from typer.testing import CliRunner

from tests.conftest import SCIFACT
from youtu_rag import MINILM, YoutuEmbedder
from youtu_rag.cli import app
from youtu_rag.measure.evaluation import (
    BeirDataset,
    Qrels,
    Run,
    document_text,
    evaluate,
    evaluate_modes,
    exact_search,
    load_beir,
    mrr_at_k,
    ndcg_at_k,
    rank,
    recall_at_k,
    score_run,
)

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "beir_sample"
K_VALUES = (1, 3, 5, 10, 100)


def _random_case(seed: int) -> tuple[Qrels, Run]:
    """Graded qrels (some queries with no relevant document, some judged non-relevant) and a
    run whose scores are rounded so that ties are frequent."""
    rng = random.Random(seed)
    docs = [f"d{index}" for index in range(60)]
    qrels: Qrels = {}
    run: Run = {}
    for query in range(40):
        query_id = f"q{query}"
        judged = rng.sample(docs, rng.randint(1, 12))
        qrels[query_id] = {doc_id: rng.choice([0, 0, 1, 1, 2, 3]) for doc_id in judged}
        retrieved = rng.sample(docs, rng.randint(1, 50))
        run[query_id] = {doc_id: round(rng.random(), 1) for doc_id in retrieved}
    run["unjudged"] = {"d1": 1.0}
    del run["q0"]  # judged but not run: trec_eval skips it
    return qrels, run


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_pytrec_eval_per_query(seed: int) -> None:
    qrels, run = _random_case(seed)
    measures = {
        f"ndcg_cut.{','.join(map(str, K_VALUES))}",
        f"recall.{','.join(map(str, K_VALUES))}",
    }
    reference = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    assert set(reference) == {query_id for query_id in run if query_id in qrels}
    for query_id, expected in reference.items():
        ranking = rank(run[query_id])
        for k in K_VALUES:
            assert ndcg_at_k(qrels[query_id], ranking, k) == pytest.approx(
                expected[f"ndcg_cut_{k}"], abs=1e-12
            )
            assert recall_at_k(qrels[query_id], ranking, k) == pytest.approx(
                expected[f"recall_{k}"], abs=1e-12
            )


@pytest.mark.parametrize("seed", range(5))
def test_mrr_at_k_is_trec_reciprocal_rank_of_the_top_k(seed: int) -> None:
    qrels, run = _random_case(seed)
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"})
    for k in K_VALUES:
        cut = {
            query_id: {d: scores[d] for d in rank(scores)[:k]} for query_id, scores in run.items()
        }
        reference = evaluator.evaluate(cut)
        for query_id, expected in reference.items():
            assert mrr_at_k(qrels[query_id], rank(run[query_id]), k) == pytest.approx(
                expected["recip_rank"], abs=1e-12
            )


def test_score_run_is_the_mean_over_queries_judged_and_run() -> None:
    qrels, run = _random_case(7)
    reference = pytrec_eval.RelevanceEvaluator(
        qrels, {"ndcg_cut.10", "recall.100", "recip_rank"}
    ).evaluate(run)
    scores = score_run(qrels, run, (10, 100))
    assert scores["ndcg@10"] == pytest.approx(
        np.mean([values["ndcg_cut_10"] for values in reference.values()]), abs=1e-12
    )
    assert scores["recall@100"] == pytest.approx(
        np.mean([values["recall_100"] for values in reference.values()]), abs=1e-12
    )
    # Every run here holds at most 50 documents, so MRR@100 is the uncut reciprocal rank.
    assert scores["mrr@100"] == pytest.approx(
        np.mean([values["recip_rank"] for values in reference.values()]), abs=1e-12
    )


def test_ties_rank_by_descending_document_id_like_trec_eval() -> None:
    assert rank({"a": 0.5, "c": 0.5, "b": 0.9, "d": 0.5}) == ["b", "d", "c", "a"]


def test_document_text_is_mtebs_title_space_text_stripped() -> None:
    assert document_text("A title.", "Some text.") == "A title. Some text."
    assert document_text("", "Only text. ") == "Only text."


def test_loader_reads_the_sample_and_keeps_only_judged_queries() -> None:
    dataset = load_beir(SAMPLE)
    assert len(dataset.corpus) == 14
    assert len(dataset.queries) == 8  # q9 is in queries.jsonl but not judged
    assert "q9" not in dataset.queries
    assert dataset.corpus["d02"].startswith("Why bread rises Yeast ferments")
    assert dataset.corpus["d04"].startswith("Lithium-ion cells")  # empty title, no space
    assert dataset.qrels["q1"] == {"d01": 2, "d14": 1}
    assert dataset.qrels["q5"] == {"d05": 2, "d11": 0}


def test_loader_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"corpus\.jsonl"):
        load_beir(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(SAMPLE, broken)
    with (broken / "qrels" / "test.tsv").open("a") as qrels:
        qrels.write("q1\tnot-a-doc\t1\n")
    with pytest.raises(ValueError, match="unknown document 'not-a-doc'"):
        load_beir(broken)
    (broken / "qrels" / "test.tsv").write_text("q1\td01\t1\n")
    with pytest.raises(ValueError, match="header"):
        load_beir(broken)


def test_exact_search_returns_the_top_k_by_cosine() -> None:
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((50, 8)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries = docs[[3, 17]] + 0.01
    doc_ids = [f"d{index}" for index in range(50)]
    run = exact_search(queries, ["a", "b"], docs, doc_ids, k=5, chunk=1)
    for row, query_id in enumerate(["a", "b"]):
        expected = [doc_ids[index] for index in np.argsort(-(docs @ queries[row]))[:5]]
        assert rank(run[query_id]) == expected
    assert rank(run["a"])[0] == "d3" and rank(run["b"])[0] == "d17"


@pytest.fixture(scope="module")
def sample_minilm() -> YoutuEmbedder:
    return YoutuEmbedder(MINILM, device="cpu")


def test_evaluate_on_the_sample_with_a_real_model(sample_minilm: YoutuEmbedder) -> None:
    result = evaluate(sample_minilm, load_beir(SAMPLE))
    assert result["queries"] == 8 and result["documents"] == 14
    # Easy, hand-written queries: MiniLM puts the best passage first for each of them.
    assert result["mrr@10"] == 1.0
    assert 0.9 < result["ndcg@10"] <= 1.0
    assert result["recall@100"] == 1.0


def test_every_mode_on_the_sample_and_dense_equals_evaluate(
    sample_minilm: YoutuEmbedder,
) -> None:
    dataset = load_beir(SAMPLE)
    result = evaluate_modes(sample_minilm, dataset)
    modes = result["modes"]
    assert isinstance(modes, dict) and sorted(modes) == ["dense", "hybrid", "lexical"]
    dense = evaluate(sample_minilm, dataset)
    for name in ("ndcg@10", "recall@100", "mrr@10"):
        assert modes["dense"][name] == dense[name]
    # Hand-written queries that share words with their passages: BM25 and the fusion rank
    # every best passage first too.
    assert modes["lexical"]["mrr@10"] == 1.0 and modes["hybrid"]["mrr@10"] == 1.0
    assert (result["queries"], result["documents"]) == (8, 14)


def test_via_chroma_reports_hnsw_against_exact_search(
    sample_minilm: YoutuEmbedder, tmp_path: Path
) -> None:
    dataset = load_beir(SAMPLE)
    exact = evaluate(sample_minilm, dataset)
    through_chroma = evaluate(sample_minilm, dataset, via_chroma=True, chroma_path=tmp_path)
    assert (tmp_path / "chroma.sqlite3").is_file()  # a real on-disk collection
    # 14 vectors: HNSW finds the exact neighbours, so the metrics agree with exact search.
    assert through_chroma["hnsw_overlap@10"] == 1.0
    for name in ("ndcg@10", "recall@100", "mrr@10"):
        assert through_chroma[name] == pytest.approx(exact[name], abs=1e-6)
        assert through_chroma[f"exact_{name}"] == exact[name]


def _scifact_slice(target: Path, documents: int = 200, queries: int = 60) -> BeirDataset:
    """The first judged SciFact queries with every document they judge, then other documents
    in corpus order up to ``documents``, written as a BEIR folder."""
    full = load_beir(SCIFACT)
    query_ids = list(full.qrels)[:queries]
    keep = list(dict.fromkeys(doc for q in query_ids for doc in full.qrels[q]))
    keep += [doc for doc in full.corpus if doc not in set(keep)][: documents - len(keep)]
    kept = set(keep)
    (target / "qrels").mkdir(parents=True)
    with (SCIFACT / "corpus.jsonl").open() as source, (target / "corpus.jsonl").open("w") as out:
        out.writelines(line for line in source if json.loads(line)["_id"] in kept)
    with (SCIFACT / "queries.jsonl").open() as source, (target / "queries.jsonl").open("w") as out:
        out.writelines(line for line in source if json.loads(line)["_id"] in set(query_ids))
    with (target / "qrels" / "test.tsv").open("w") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for q in query_ids:
            out.writelines(f"{q}\t{doc}\t{grade}\n" for doc, grade in full.qrels[q].items())
    return load_beir(target)


@pytest.mark.skipif(not SCIFACT.is_dir(), reason="SciFact is not in ../shared/data")
def test_eval_command_on_a_scifact_slice(tmp_path: Path) -> None:
    sliced = _scifact_slice(tmp_path / "scifact200")
    assert len(sliced.corpus) == 200 and len(sliced.queries) == 60
    result = CliRunner().invoke(
        app,
        ["eval", "--beir", str(tmp_path / "scifact200"), "--model", MINILM, "--json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"ndcg@10", "recall@100", "mrr@10", "queries", "documents", "seconds"} <= set(report)
    assert report["queries"] == 60 and report["documents"] == 200
    # Every relevant abstract is among 200 documents: far easier than the full corpus
    # (nDCG@10 0.645), and every relevant document is within the top 100.
    assert report["ndcg@10"] > 0.85
    assert report["recall@100"] > 0.95


def test_eval_command_fails_in_one_line_on_a_folder_that_is_not_beir(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "--beir", str(tmp_path), "--model", MINILM])
    assert result.exit_code == 1
    assert "not a BEIR dataset" in result.stderr
    assert "Traceback" not in result.output
