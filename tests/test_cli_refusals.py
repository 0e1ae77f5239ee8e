"""Smaller refusals, each one line and exit 1: two indexes named at once, a busy port for
`serve`, a Tencent Cloud endpoint with a path."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from youtu_rag import MINILM
from youtu_rag.backends.tencent_cloud import TencentCloudEmbedder
from youtu_rag.cli import app

runner = CliRunner()


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(
    "command",
    [["search", "池化 pooling"], ["ask", "What is pooling?"], ["info"], ["index", "--ray", "."]],
)
def test_url_with_a_persist_dir_is_refused(command: list[str], tmp_path: Path) -> None:
    result = runner.invoke(
        app, [*command, "--url", "http://127.0.0.1:9", "--persist-dir", str(tmp_path / "db")]
    )
    assert result.exit_code == 1, result.output
    assert error_lines(result.stderr) == [
        f"error: --url http://127.0.0.1:9 and --persist-dir {tmp_path / 'db'} name two "
        "indexes; give one"
    ]
    assert not (tmp_path / "db").exists()


def test_serve_on_a_busy_port_is_one_error_line() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", "--model", MINILM, "--port", str(port)])
    assert result.exit_code == 1, result.output
    assert error_lines(result.stderr) == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:8080/v1", "https://h.example/api?x=1"])
def test_a_tencent_endpoint_keeps_no_path_silently(endpoint: str) -> None:
    with pytest.raises(ValueError, match=r"has a path|has a query"):
        TencentCloudEmbedder("lke-text-embedding-v1", endpoint=endpoint)
    kept = TencentCloudEmbedder("lke-text-embedding-v1", endpoint="http://127.0.0.1:8080/")
    assert (kept.protocol, kept.endpoint) == ("http", "127.0.0.1:8080")
