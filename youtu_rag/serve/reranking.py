"""``POST /v1/rerank``: a cross-encoder behind the server, in the shape Cohere, Jina and LiteLLM
use.

Request: ``query``, ``documents`` (strings, or objects with ``text``), optional ``model``,
``top_n`` and ``return_documents``. Response: ``results`` (``index``, ``relevance_score``, and
with ``return_documents`` the ``document`` as ``{"text": ...}``) best first, ``model``,
``usage.total_tokens``. The route shares the server's API key, body limits and timeouts; its
pairs are scored on the model thread in slices of one batch, so an embeddings request (or
another rerank) waits for one slice at most, not for a whole large rerank.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from youtu_rag.backends.protocol import TextReranker

__all__ = ["RerankRequest", "rerank_answer"]


class RerankDocument(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    text: str


class RerankRequest(BaseModel):
    """The request body; strict, as the embeddings route's."""

    model_config = ConfigDict(extra="forbid", strict=True)

    query: str
    documents: list[str | RerankDocument]
    model: str | None = None
    top_n: int | None = Field(default=None, ge=1)
    return_documents: bool = False

    def texts(self) -> list[str]:
        return [doc if isinstance(doc, str) else doc.text for doc in self.documents]


def parse_request(body: bytes) -> RerankRequest | ValidationError:
    try:
        return RerankRequest.model_validate_json(body)
    except ValidationError as error:
        return error


async def rerank_answer(
    reranker: TextReranker,
    request: RerankRequest,
    executor: Executor,
    slice_size: int,
    count_tokens: Callable[[str, Sequence[str]], int],
) -> dict[str, Any]:
    """Score the documents slice by slice on ``executor`` and build the answer."""
    texts = request.texts()
    loop = asyncio.get_running_loop()
    scores: list[float] = []
    for start in range(0, len(texts), slice_size):
        part = texts[start : start + slice_size]
        scores += await loop.run_in_executor(executor, reranker.score, request.query, part)
    order = sorted(range(len(scores)), key=lambda index: -scores[index])[: request.top_n]
    results: list[dict[str, Any]] = []
    for index in order:
        result: dict[str, Any] = {"index": index, "relevance_score": scores[index]}
        if request.return_documents:
            result["document"] = {"text": texts[index]}
        results.append(result)
    tokens = await loop.run_in_executor(executor, count_tokens, request.query, texts)
    return {
        "id": str(uuid.uuid4()),
        "results": results,
        "model": request.model or reranker.model_name,
        "usage": {"total_tokens": tokens},
    }
