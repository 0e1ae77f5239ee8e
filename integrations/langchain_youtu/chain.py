"""create_rag_chain: retrieve, number the passages with their sources, ask any chat model.

The context is built by :mod:`youtu_rag.index.prompt`, the same text the CLI shows; this module only
wires it into LCEL.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from typing import Any

from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import BasePromptTemplate, ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

from youtu_rag.index.prompt import SYSTEM_PROMPT, USER_TEMPLATE, Passage, format_context


def default_prompt() -> ChatPromptTemplate:
    """System instructions to answer from the passages and cite them, then the question."""
    return ChatPromptTemplate.from_messages([("system", SYSTEM_PROMPT), ("human", USER_TEMPLATE)])


def to_passages(documents: Iterable[Document]) -> list[Passage]:
    """Each document's text with the ``source`` from its metadata.

    Args:
        documents: retrieved documents.

    Returns:
        One :class:`~youtu_rag.index.prompt.Passage` per document, in order.
    """
    return [
        Passage(text=document.page_content, source=_source(document.metadata.get("source")))
        for document in documents
    ]


def _source(value: object) -> str | None:
    return None if value is None else str(value)


def format_documents(documents: Iterable[Document]) -> str:
    """Numbered passages with their sources, as :func:`youtu_rag.index.prompt.format_context` does.

    Args:
        documents: retrieved documents, best first.

    Returns:
        The context text.
    """
    return format_context(to_passages(documents))


def _as_input(value: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, str):
        return {"question": value}
    if isinstance(value, dict) and isinstance(value.get("question"), str):
        return dict(value)
    raise TypeError(f"expected a question string or a dict with a 'question' string, got {value!r}")


def create_rag_chain(
    retriever: BaseRetriever,
    chat_model: BaseChatModel,
    prompt: BasePromptTemplate[Any] | None = None,
    reranker: BaseDocumentCompressor | None = None,
) -> Runnable[str | dict[str, Any], dict[str, Any]]:
    """A chain from a question to ``{"question", "sources", "answer"}``.

    Input: the question as a string, or a dict with ``"question"`` (other keys reach the
    prompt). ``sources`` are the retrieved documents in citation order (``[1]`` is
    ``sources[0]``).

    Args:
        retriever: any LangChain retriever, e.g. :class:`~langchain_youtu.YoutuRetriever`.
        chat_model: any LangChain chat model.
        prompt: a prompt taking ``{context}`` and ``{question}``; ``None`` for the default.
        reranker: a second stage over the retriever's documents, e.g.
            :class:`~langchain_youtu.YoutuReranker` (give the retriever more candidates than
            the reranker's ``top_n``).

    Returns:
        The runnable chain.

    Raises:
        ValueError: the prompt lacks ``context`` or ``question``.
    """
    prompt = default_prompt() if prompt is None else prompt
    missing = {"context", "question"} - set(prompt.input_variables)
    if missing:
        raise ValueError(f"the prompt must take {sorted(missing)} as input variables")
    answer = (
        RunnablePassthrough.assign(context=lambda inputs: format_documents(inputs["sources"]))
        | prompt
        | chat_model
        | StrOutputParser()
    )
    chain: Runnable[str | dict[str, Any], dict[str, Any]] = (
        RunnableLambda(_as_input)
        | RunnablePassthrough.assign(
            sources=itemgetter("question") | _reranked(retriever, reranker)
        )
        | RunnablePassthrough.assign(answer=answer)
    )
    return chain.with_config(run_name="youtu_rag_chain")


def _reranked(
    retriever: BaseRetriever, reranker: BaseDocumentCompressor | None
) -> Runnable[str, list[Document]]:
    if reranker is None:
        return retriever
    return RunnableLambda(
        lambda question: list(reranker.compress_documents(retriever.invoke(question), question))
    )
