"""The RAG chain with LangChain's fake chat models over a real collection, and rag formatting."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_youtu import YoutuRetriever, create_rag_chain

from tests.samples import passage_store
from youtu_rag import YoutuEmbedder
from youtu_rag.index.prompt import (
    SYSTEM_PROMPT,
    Passage,
    build_messages,
    format_context,
    format_sources,
)

PASSAGES = {
    "pooling": (
        "Masked mean pooling averages only the text tokens, not the instruction.",
        "/docs/pooling.md",
    ),
    "chroma": ("Chroma stores vectors, documents and metadata in collections.", "/docs/chroma.md"),
    "bananas": ("Bananas are a yellow fruit rich in potassium.", "/docs/fruit.txt"),
}
QUESTION = "What does masked mean pooling average?"


class PromptRecorder(BaseCallbackHandler):
    """Keeps the messages each chat model call actually received."""

    def __init__(self) -> None:
        self.prompts: list[list[BaseMessage]] = []

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        self.prompts.extend(messages)


@pytest.fixture(scope="module")
def retriever(minilm: YoutuEmbedder, tmp_path_factory: pytest.TempPathFactory) -> YoutuRetriever:
    store = passage_store(minilm, tmp_path_factory.mktemp("chain"), PASSAGES)
    return YoutuRetriever(store=store, k=2)


def test_model_receives_numbered_passages_with_sources(retriever: YoutuRetriever) -> None:
    recorder = PromptRecorder()
    model = FakeListChatModel(responses=["It averages the text tokens [1]."])
    result = create_rag_chain(retriever, model).invoke(QUESTION, {"callbacks": [recorder]})

    retrieved = [str(document.id) for document in retriever.invoke(QUESTION)]
    assert result["answer"] == "It averages the text tokens [1]."
    assert result["question"] == QUESTION
    assert [document.id for document in result["sources"]] == retrieved
    assert retrieved[0] == "pooling"
    (left_out,) = set(PASSAGES) - set(retrieved)
    (messages,) = recorder.prompts
    assert [message.type for message in messages] == ["system", "human"]
    assert messages[0].content == SYSTEM_PROMPT
    human = messages[1].content
    assert isinstance(human, str)
    for number, key in enumerate(retrieved, start=1):
        text, source = PASSAGES[key]
        assert f"[{number}] source: {source}\n{text}" in human
    assert PASSAGES[left_out][0] not in human
    assert human.endswith(f"Question: {QUESTION}")


async def test_async_with_dict_input_and_a_generic_fake(retriever: YoutuRetriever) -> None:
    recorder = PromptRecorder()
    model = GenericFakeChatModel(messages=iter([AIMessage(content="Bananas [1].")]))
    chain = create_rag_chain(retriever, model)
    result = await chain.ainvoke({"question": "Which fruit is yellow?"}, {"callbacks": [recorder]})
    assert result["answer"] == "Bananas [1]."
    assert result["sources"][0].metadata["source"] == "/docs/fruit.txt"
    assert "[1] source: /docs/fruit.txt" in str(recorder.prompts[0][-1].content)


def test_custom_prompt(retriever: YoutuRetriever) -> None:
    recorder = PromptRecorder()
    prompt = ChatPromptTemplate.from_messages(
        [("human", "Context:\n{context}\nQ: {question}\nAnswer in {language}.")]
    )
    chain = create_rag_chain(retriever, FakeListChatModel(responses=["Oui."]), prompt)
    result = chain.invoke({"question": QUESTION, "language": "French"}, {"callbacks": [recorder]})
    assert result["answer"] == "Oui."
    (messages,) = recorder.prompts
    assert str(messages[0].content).startswith("Context:\n[1] source: /docs/pooling.md")
    assert str(messages[0].content).endswith("Answer in French.")


def test_prompt_without_context_or_question_is_refused(retriever: YoutuRetriever) -> None:
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    with pytest.raises(ValueError, match="context"):
        create_rag_chain(retriever, FakeListChatModel(responses=["x"]), prompt)


def test_bad_input_is_refused(retriever: YoutuRetriever) -> None:
    chain = create_rag_chain(retriever, FakeListChatModel(responses=["x"]))
    with pytest.raises(TypeError, match="question"):
        chain.invoke({"query": QUESTION})


def test_rag_formatting() -> None:
    passages = [Passage("  first text \n", "/a.md"), Passage("second", None)]
    assert format_context(passages) == "[1] source: /a.md\nfirst text\n\n[2]\nsecond"
    assert format_sources(passages) == "[1] /a.md\n[2] (unknown source)"
    messages = build_messages("Why?", passages)
    assert messages[0] == ("system", SYSTEM_PROMPT)
    assert messages[1] == ("user", f"Passages:\n\n{format_context(passages)}\n\nQuestion: Why?")
