"""YoutuRetriever: youtu-rag's Chroma store as a LangChain ``BaseRetriever``.

Thin on purpose: embedding, filtering and MMR happen in :class:`youtu_rag.index.store.ChromaStore`;
this class only turns hits into ``Document`` objects and speaks LangChain's retriever vocabulary
(``search_type`` and ``search_kwargs`` as ``VectorStore.as_retriever`` takes them), so a retriever
built for ``langchain_chroma`` moves over with its options and returns the same documents.
Options it does not know are refused, never ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field, model_validator
from typing_extensions import Self

from youtu_rag.index.fusion import DEFAULT_MODE, SearchMode
from youtu_rag.index.rerank import DEFAULT_CANDIDATES, rerank_hits
from youtu_rag.index.store import ChromaStore, Hit

SearchType = Literal["similarity", "mmr", "similarity_score_threshold"]
#: ``search_kwargs`` keys, as ``VectorStore.as_retriever`` documents them for Chroma.
SEARCH_KWARGS = ("k", "fetch_k", "lambda_mult", "filter", "score_threshold", "where_document")
#: MMR candidates when ``fetch_k`` is not given: LangChain's default, so results match its own.
DEFAULT_FETCH_K = 20


def hit_to_document(hit: Hit) -> Document:
    """A ``Document`` with the chunk's metadata plus its ``id``, its ``score`` (the search
    mode's: fused, cosine or BM25) and each side's score where that side ranked it
    (``dense_score``: cosine, ``lexical_score``: BM25).

    Args:
        hit: one search result.

    Returns:
        The document, its ``id`` the chunk's id.
    """
    return Document(
        page_content=hit.text,
        metadata={
            **hit.metadata,
            "id": hit.id,
            "score": hit.score,
            **({} if hit.dense_score is None else {"dense_score": hit.dense_score}),
            **({} if hit.lexical_score is None else {"lexical_score": hit.lexical_score}),
            **({} if hit.rerank_score is None else {"relevance_score": hit.rerank_score}),
        },
        id=hit.id,
    )


class YoutuRetriever(BaseRetriever):
    """Top-``k`` passages from a youtu-rag Chroma collection, best first.

    Takes LangChain's retriever options (``search_type="mmr"``, ``search_kwargs={"k": 2,
    "filter": {...}}``) or the same settings as fields (``k``, ``where``, ``mmr``, ...); a
    setting given both ways must agree. ``invoke(query, k=..., filter=...)`` overrides any
    ``search_kwargs`` key for one call.

    Example:
        .. code-block:: python

            from youtu_rag import MINILM, YoutuEmbedder
            from youtu_rag.index.store import ChromaStore
            from langchain_youtu import YoutuRetriever

            store = ChromaStore.open(YoutuEmbedder(MINILM), persist_dir=".youtu_rag")
            retriever = YoutuRetriever(store=store, search_type="mmr", search_kwargs={"k": 4})
            docs = retriever.invoke("What is masked mean pooling?", k=2)
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    store: ChromaStore
    """The collection to search, with the embedder that built it."""
    search_type: SearchType = "similarity"
    """``similarity``, ``mmr`` (diverse) or ``similarity_score_threshold`` (only hits scoring
    at least ``score_threshold``)."""
    search_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Any of ``k``, ``fetch_k``, ``lambda_mult``, ``filter``, ``score_threshold``,
    ``where_document``, as ``as_retriever`` takes them."""
    k: int = Field(default=4, ge=1)
    """Passages per query; ``invoke(query, k=...)`` overrides it for one call."""
    where: dict[str, Any] | None = None
    """Chroma metadata filter, e.g. ``{"source": "/docs/faq.md"}`` (``filter`` in
    ``search_kwargs``)."""
    where_document: dict[str, Any] | None = None
    """Chroma document filter, e.g. ``{"$contains": "pooling"}``."""
    mmr: bool = False
    """Re-rank by maximal marginal relevance (``search_type="mmr"``)."""
    fetch_k: int | None = Field(default=None, ge=1)
    """MMR candidates (default 20, as LangChain's)."""
    lambda_mult: float = Field(default=0.5, ge=0.0, le=1.0)
    """MMR trade-off: 1 is pure relevance, 0 pure diversity."""
    score_threshold: float | None = None
    """Drop hits whose cosine score is below it."""

    @model_validator(mode="after")
    def _one_meaning_per_setting(self) -> Self:
        """Check ``search_kwargs`` and ``search_type`` against the fields, once, up front."""
        self._options({})
        return self

    def _options(self, per_call: Mapping[str, Any]) -> dict[str, Any]:
        """The :meth:`ChromaStore.search` keywords and the score threshold for one call."""
        unknown = sorted(set(self.search_kwargs) - set(SEARCH_KWARGS))
        if unknown:
            raise ValueError(
                f"search_kwargs {', '.join(unknown)} not understood; "
                f"known: {', '.join(SEARCH_KWARGS)}"
            )
        fields = {
            "k": self.k,
            "filter": self.where,
            "where_document": self.where_document,
            "fetch_k": self.fetch_k,
            "lambda_mult": self.lambda_mult,
            "score_threshold": self.score_threshold,
        }
        defaults = {"k": 4, "lambda_mult": 0.5}
        for key, value in self.search_kwargs.items():
            field_value = fields[key]
            if field_value not in (None, defaults.get(key)) and field_value != value:
                name = "where" if key == "filter" else key
                raise ValueError(
                    f"{name}={field_value!r} and search_kwargs[{key!r}]={value!r} differ; give one"
                )
            fields[key] = value
        if self.mmr and self.search_type == "similarity_score_threshold":
            raise ValueError(f"mmr=True and search_type={self.search_type!r} differ; give one")
        per_call = dict(per_call)
        if "where" in per_call:
            per_call["filter"] = per_call.pop("where")
        unknown = sorted(set(per_call) - set(SEARCH_KWARGS))
        if unknown:
            raise TypeError(
                f"invoke() does not take {', '.join(unknown)}; it takes "
                f"{', '.join(SEARCH_KWARGS)} and where (= filter)"
            )
        fields.update(per_call)
        if self.search_type == "similarity_score_threshold" and fields["score_threshold"] is None:
            raise ValueError(
                "search_type='similarity_score_threshold' needs search_kwargs['score_threshold']"
            )
        mmr = self.mmr or self.search_type == "mmr"
        return {
            "k": fields["k"],
            "where": fields["filter"],
            "where_document": fields["where_document"],
            "mmr": mmr,
            "fetch_k": (fields["fetch_k"] or DEFAULT_FETCH_K) if mmr else None,
            "lambda_mult": fields["lambda_mult"],
            "score_threshold": fields["score_threshold"],
        }

    mode: SearchMode = DEFAULT_MODE
    """``hybrid`` (dense and BM25 fused), ``dense`` or ``lexical``; see ``ChromaStore.search``."""
    reranker: Any = None
    """A second stage (``youtu_rag.Reranker``): the first stage gives ``candidates`` hits, the
    reranker keeps the ``k`` best; each document's metadata gets ``relevance_score``."""
    candidates: int = Field(default=DEFAULT_CANDIDATES, ge=1)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **per_call: Any
    ) -> list[Document]:
        options = self._options(per_call)
        threshold = options.pop("score_threshold")
        k = options["k"]
        if self.reranker is not None:
            options["k"] = max(k, self.candidates)
        hits = self.store.search(query, mode=self.mode, **options)
        if options["mmr"]:
            # MMR chooses which passages; they come best first, as langchain_chroma returns them.
            hits.sort(key=lambda hit: hit.score, reverse=True)
        if threshold is not None:
            # A threshold on cosine similarity, as LangChain's relevance scores: a hybrid hit
            # the dense side did not rank has none and is left out.
            hits = [h for h in hits if h.dense_score is not None and h.dense_score >= threshold]
        if self.reranker is not None:
            hits = rerank_hits(self.reranker, query, hits, k)
        return [hit_to_document(hit) for hit in hits]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **per_call: Any
    ) -> list[Document]:
        # The model runs in a worker thread so the event loop stays free; the per-call options
        # are the sync method's, which checks them.
        documents: list[Document] = await run_in_executor(
            None,
            self._get_relevant_documents,
            query,
            run_manager=run_manager.get_sync(),
            **per_call,
        )
        return documents
