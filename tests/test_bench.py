"""Benchmarks: the seed baseline, the FLOP count, and both ``youtu-rag bench`` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import SCIFACT
from youtu_rag import MINILM, YoutuEmbedder
from youtu_rag.cli import app
from youtu_rag.measure.bench import forward_flops, matmul_peak
from youtu_rag.measure.seed_baseline import seed_encode

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "beir_sample"
TEXTS = [
    "The weather is lovely today.",
    "Retrieval augmented generation feeds the best passages to a chat model. " * 30,
    "结算业务系统用户使用",
]

ENCODE_KEYS = {
    "model",
    "attention",
    "device",
    "cpu",
    "cpu_capability",
    "cpu_native_bf16",
    "threads",
    "documents",
    "batch_size",
    "repeats",
    "max_length",
    "st_max_length",
    "seed_max_length",
    "peak_tflops_fp32",
    "peak_tflops_bf16",
    "speedup_fp32_vs_st",
    "speedup_bf16_vs_st",
    "speedup_bf16_vs_fp32",
    "speedup_fp32_vs_seed",
    "peak_fraction_fp32",
    "peak_fraction_bf16",
    "min_cosine_fp32_vs_st",
    "min_cosine_bf16_vs_fp32",
    "min_cosine_fp32_vs_seed",
    "methods",
}
METHODS = {"youtu_rag_fp32", "youtu_rag_bf16", "seed_fp32"}
ST = "sentence_transformers_fp32"
METHOD_KEYS = {"seconds", "docs_per_s", "tokens_per_s", "tflops", "peak_fraction"}


def test_seed_baseline_truncates_at_1024_tokens(tiny_youtu: YoutuEmbedder) -> None:
    """Where a text exceeds the seed's 1024 tokens, the core (which reads up to the model's
    limit) and the seed disagree; below it they agree."""
    backbone = tiny_youtu.backbone
    long_text = "Retrieval augmented generation feeds the best passages to a chat model. " * 80
    assert len(backbone.tokenizer(long_text)["input_ids"]) > 1024
    seed = seed_encode(backbone.model, backbone.tokenizer, [long_text, TEXTS[0]])
    ours = tiny_youtu.encode_documents([long_text, TEXTS[0]])
    assert np.abs(seed[1] - ours[1]).max() <= 1e-5
    assert np.abs(seed[0] - ours[0]).max() > 1e-4


def test_forward_flops_counts_minilm_by_hand(minilm: YoutuEmbedder) -> None:
    # 6 layers of Q, K, V, O (384x384) and the 384<->1536 MLP; the pooler is per sequence.
    weights = 6 * (4 * 384 * 384 + 2 * 384 * 1536)
    # QK^T and AV: 2 * n^2 * (12 heads * 32) each, per layer.
    attention = 6 * 2 * 12 * (32 + 32)
    flops = forward_flops(minilm.backbone.model, [10, 3])
    assert flops == 2 * weights * 13 + attention * (10**2 + 3**2)


def test_matmul_peak_is_a_positive_rate() -> None:
    peak = matmul_peak(torch.float32, torch.device("cpu"), min_seconds=0.001)
    assert np.isfinite(peak) and peak > 1e8  # any CPU of the last 20 years does 0.1 GFLOP/s


def _bench_encode(argv: list[str], with_st: bool) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["bench", "encode", *argv, "--json"])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    assert set(report) == ENCODE_KEYS
    assert set(report["methods"]) == (METHODS | {ST} if with_st else METHODS)
    assert report["cpu_capability"] in ("DEFAULT", "AVX2", "AVX512", "ZVECTOR", "VSX")
    for row in report["methods"].values():
        assert set(row) == METHOD_KEYS
        assert all(np.isfinite(value) and value > 0 for value in row.values())
    speedups = ["speedup_fp32_vs_seed", "speedup_bf16_vs_fp32"]
    if with_st:
        speedups += ["speedup_fp32_vs_st", "speedup_bf16_vs_st"]
    else:
        assert report["speedup_fp32_vs_st"] is None and report["st_max_length"] is None
    for key in speedups:
        assert np.isfinite(report[key]) and report[key] > 0
    return report


def test_bench_encode_emits_every_key(tiny_youtu_dir: str) -> None:
    """The CI run: 64 documents on the tiny utu model, one truncation for all methods.

    sentence-transformers cannot load a utu checkpoint, so it is left out."""
    beir = SCIFACT if SCIFACT.is_dir() else SAMPLE
    argv = ["--beir", str(beir), "--model", tiny_youtu_dir, "--limit", "64", "--max-length", "128"]
    report = _bench_encode(argv, with_st=False)
    assert report["documents"] == (64 if beir == SCIFACT else 14)
    assert report["attention"] == "bidirectional"
    assert report["max_length"] == report["seed_max_length"] == 128
    # Documents carry no prefix, so the seed masks only BOS, as the core does: same vectors.
    assert report["min_cosine_fp32_vs_seed"] > 0.9999
    assert report["min_cosine_bf16_vs_fp32"] > 0.98


def test_bench_encode_runs_sentence_transformers_on_the_same_weights() -> None:
    report = _bench_encode(["--beir", str(SAMPLE), "--model", MINILM, "--limit", "64"], True)
    assert report["documents"] == 14
    assert report["st_max_length"] == report["max_length"] == 256
    assert report["seed_max_length"] == 512  # the seed's 1024, capped by MiniLM's positions
    # Same weights, same mean pooling: youtu-rag and sentence-transformers agree.
    assert report["min_cosine_fp32_vs_st"] > 0.9999
    assert report["min_cosine_bf16_vs_fp32"] > 0.99


def test_bench_retrieval_reports_latency_and_recall() -> None:
    argv = ["bench", "retrieval", "--size", "300", "--size", "3000", "--dim", "32"]
    result = CliRunner().invoke(app, [*argv, "--queries", "25", "--ef-search", "120", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dim"] == 32 and report["queries"] == 25 and report["k"] == 10
    assert report["ef_search"] == 120 and report["distribution"] == "uniform"
    small, large = report["results"]
    assert small["vectors"] == 300 and large["vectors"] == 3000
    for row in (small, large):
        assert 0 < row["p50_ms"] <= row["p95_ms"]
        assert row["exact_p50_ms"] > 0 and row["build_seconds"] > 0
        assert 0.0 <= row["recall@10"] <= 1.0
    # 300 vectors: HNSW's candidate list (120) covers over a third of the set; near exact.
    assert small["recall@10"] >= 0.95


def test_bench_retrieval_clustered_vectors_are_easy_for_hnsw() -> None:
    argv = ["bench", "retrieval", "--size", "2000", "--dim", "64", "--queries", "20"]
    result = CliRunner().invoke(app, [*argv, "--clustered", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["distribution"] == "clustered" and report["ef_search"] == "default"
    assert report["results"][0]["recall@10"] >= 0.9


def test_bench_encode_builds_a_random_model_of_the_published_width() -> None:
    """One layer of the real shape (hidden 2048, 32 heads of 64, vocab 128256) on 2 texts."""
    argv = ["--beir", str(SAMPLE), "--random-utu-layers", "1", "--limit", "2", "--max-length", "16"]
    report = _bench_encode(argv, with_st=False)
    assert report["model"] == "random utu of the published width, 1 of 32 layers"
    # Linear weights per token of one layer: Q, K, V, O (2048^2 each) and the 2048<->8192 MLP.
    per_token = 4 * 2048 * 2048 + 3 * 2048 * 8192
    row = report["methods"]["youtu_rag_fp32"]
    tokens = row["tokens_per_s"] * row["seconds"]
    assert row["tflops"] * 1e12 * row["seconds"] >= 2 * per_token * tokens * 0.999


@pytest.mark.parametrize("argv", [["bench"], ["bench", "encode", "--beir", "/nonexistent"]])
def test_bench_usage_errors_exit_non_zero(argv: list[str]) -> None:
    result = CliRunner().invoke(app, argv)
    assert result.exit_code != 0


def test_bench_serve_command_json() -> None:
    """Both servers, the in-process baseline and every client count end up in the report."""
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "serve",
            "--beir",
            str(SAMPLE),
            "--model",
            MINILM,
            "--requests",
            "6",
            "--repeats",
            "1",
            "--clients",
            "1",
            "--clients",
            "3",
            "--threads",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["requests"], report["texts_per_request"], report["threads"]) == (6, 1, 1)
    assert set(report["server"]) == {"dynamic_batching", "one_request_per_forward"}
    assert set(report["batching_gain"]) == {"1", "3"} and min(report["batching_gain"].values()) > 0
    for row in [*report["in_process"].values(), *report["server"]["dynamic_batching"].values()]:
        assert row["texts_per_s"] > 0 and row["tokens_per_s"] > row["texts_per_s"]
        assert 0 < row["p50_ms"] <= row["p99_ms"]
    # Without batching, a forward pass holds exactly one request: here, one text.
    for row in report["server"]["one_request_per_forward"].values():
        assert row["texts_per_forward"] == 1
    assert report["machine"]["logical_cpus"] >= 1 and report["machine"]["cpu"]


def test_bench_serve_fairness_scenario_json() -> None:
    """One-word requests idle and during a large request, with the large request's vectors
    checked against the model in process (figures are printed, never asserted: timings are
    noisy here)."""
    result = CliRunner().invoke(
        app,
        [
            *("bench", "serve", "--beir", str(SAMPLE), "--model", MINILM, "--scenario"),
            *("fairness", "--big-texts", "48", "--big-characters", "600", "--batch-size", "8"),
            *("--threads", "1", "--json"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"fairness"}
    fairness = report["fairness"]
    assert fairness["big_request"] == {"texts": 48, "characters": 600}
    assert fairness["big_in_order"] and fairness["big_vectors_max_abs_diff"] <= 1e-5
    assert fairness["big_request_forward_passes"] == 6  # 48 texts, 8 a batch
    assert fairness["probes_during"] >= 1 and fairness["probe_p50_during_ms"] > 0
    expected = 3 * fairness["probe_p50_idle_ms"] + fairness["big_request_batch_ms"]
    assert fairness["goal_ms"] == pytest.approx(expected)
    assert fairness["machine"]["cpu"]


def test_bench_ingest_per_format_and_ocr_per_page(tmp_path: Path) -> None:
    from tests import documents

    documents.write_docx(tmp_path / "report.docx")
    documents.write_xlsx(tmp_path / "ledger.xlsx")
    documents.scanned_page().save(tmp_path / "scan.png")
    (tmp_path / "clip.mp4").write_bytes(b"\x00")
    result = CliRunner().invoke(app, ["bench", "ingest", str(tmp_path), "-m", MINILM, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["formats"]) == {".docx", ".xlsx", ".png"}
    assert report["formats"][".xlsx"]["units"] == 2  # two sheets
    assert report["formats"][".xlsx"]["chunks"] > 2
    assert all(row["units_per_s"] > 0 and row["skipped"] == 0 for row in report["formats"].values())
    assert report["ocr_pages"] == 1 and report["ocr_seconds_per_page"] > 0
    assert report["unsupported"] == {".mp4": 1} and report["machine"]["cpu"]
