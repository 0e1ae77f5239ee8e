"""YoutuEmbeddings: the core as a LangChain ``Embeddings``.

LangChain vector stores call ``embed_documents`` when indexing and ``embed_query`` when
searching, so the query instruction is applied (and masked out of the mean) by the core without
anyone writing it into ``page_content``.
"""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor

from youtu_rag.backends.settings import EmbedderAdapter


class YoutuEmbeddings(EmbedderAdapter, Embeddings):
    """Youtu-Embedding (or any other checkpoint the core can embed) for LangChain.

    The fields are the core's options (:class:`~youtu_rag.backends.settings.EmbedderSettings`),
    frozen: ``model_copy(update=...)``, pickling and copying give an object whose vectors match its
    fields. Instances with the same (model, device, dtype) share one loaded model, so a retriever
    and a chain may each hold their own. ``base_url=`` embeds through a ``youtu-rag serve`` server
    and ``model="tencent-cloud:<model>"`` through the Tencent Cloud API.

    Example:
        .. code-block:: python

            from langchain_youtu import YoutuEmbeddings

            embeddings = YoutuEmbeddings(model="sentence-transformers/all-MiniLM-L6-v2")
            vector = embeddings.embed_query("What is masked mean pooling?")

    ``HuggingFaceEmbeddings`` code moves over by changing the import and the class name:
    ``model_name=``, ``model_kwargs={"device": ...}`` and ``encode_kwargs`` with
    ``normalize_embeddings=True``, ``batch_size`` or ``show_progress_bar`` mean here what they
    mean there, and ``model_name`` reads back the model.
    """

    def __init__(self, model: str | None = None, /, **options: Any) -> None:
        """Validate the options and load the model (or connect to the server).

        Args:
            model: the model, positionally (the same as ``model=``).
            **options: :class:`~youtu_rag.backends.settings.EmbedderSettings` options, and the
                ``HuggingFaceEmbeddings`` spellings of them.

        Raises:
            pydantic.ValidationError: an option is unknown or invalid.
            TypeError: the model is given both positionally and by keyword.
        """
        if model is not None:
            if {"model", "model_name", "model_name_or_path"} & set(options):
                raise TypeError("give the model once: positionally or by keyword")
            options["model_name_or_path"] = model
        super().__init__(**options)

    @property
    def model_name(self) -> str:
        """The model, as ``HuggingFaceEmbeddings.model_name`` names it (e.g. for a cache
        namespace)."""
        return self.model_name_or_path

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents with the document instruction (none by default).

        Args:
            texts: the documents.

        Returns:
            One list of Python floats per text, unit length, in input order.

        Raises:
            TypeError: a text is not a string (the message names its index).
            ValueError: a text is empty or whitespace only.
        """
        vectors: list[list[float]] = self.embedder.encode_documents(texts).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed one search query with the query instruction.

        Args:
            text: the query.

        Returns:
            A unit-length list of Python floats.

        Raises:
            TypeError: the query is not a string.
            ValueError: it is empty or whitespace only.
        """
        vector: list[float] = self.embedder.encode_queries([text])[0].tolist()
        return vector

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """:meth:`embed_documents` in a worker thread, keeping the event loop free.

        Args:
            texts: the documents.

        Returns:
            One list of Python floats per text.
        """
        return await run_in_executor(None, self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """:meth:`embed_query` in a worker thread, keeping the event loop free.

        Args:
            text: the query.

        Returns:
            A unit-length list of Python floats.
        """
        return await run_in_executor(None, self.embed_query, text)
