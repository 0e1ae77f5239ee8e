"""`youtu-rag verify`: the weather example against the published scores."""

from __future__ import annotations

import json

import numpy as np
from sentence_transformers import SentenceTransformer
from typer.testing import CliRunner

from youtu_rag import MINILM, YOUTU_EMBEDDING, get_profile
from youtu_rag.cli import app
from youtu_rag.measure.verify import FINGERPRINTS, WEATHER_DOCUMENTS, WEATHER_QUERY

runner = CliRunner()


def test_the_minilm_fingerprint_is_what_sentence_transformers_computes() -> None:
    model = SentenceTransformer(get_profile(MINILM).source, device="cpu")
    query = model.encode([WEATHER_QUERY], normalize_embeddings=True)
    documents = model.encode(list(WEATHER_DOCUMENTS), normalize_embeddings=True)
    expected = np.asarray(FINGERPRINTS[MINILM].scores)
    assert np.abs((documents @ query.T)[:, 0] - expected).max() <= 1e-6


def test_minilm_passes() -> None:
    result = runner.invoke(app, ["verify", "--model", MINILM])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "PASS"
    assert "0.62189" in result.stdout and "largest difference" in result.stdout


def test_a_random_utu_checkpoint_fails_and_shows_both_attention_modes(tiny_youtu_dir: str) -> None:
    result = runner.invoke(app, ["verify", "--model", tiny_youtu_dir])
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"model: {tiny_youtu_dir} (attention bidirectional)"
    assert "0.44651979" in result.stdout  # the published Youtu-Embedding scores
    assert any(line.startswith("with causal attention: ") for line in lines)
    assert lines[-1] == "FAIL"

    as_json = runner.invoke(app, ["verify", "--model", tiny_youtu_dir, "--json"])
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["passed"] is False
    assert report["expected"] == list(FINGERPRINTS[YOUTU_EMBEDDING].scores)
    assert report["attention"] == "bidirectional" and report["other_attention"] == "causal"
    assert len(report["scores"]) == len(report["other_scores"]) == 3
    assert report["scores"] != report["other_scores"]
    assert report["max_difference"] > 2e-3


def test_causal_first_reports_bidirectional_as_the_other_mode(tiny_youtu_dir: str) -> None:
    from youtu_rag.measure.verify import verify

    causal = verify(tiny_youtu_dir, device="cpu", attention="causal")
    bidirectional = verify(tiny_youtu_dir, device="cpu")
    assert causal.other_attention == "bidirectional"
    assert causal.other_scores == bidirectional.scores
    assert causal.scores == bidirectional.other_scores
