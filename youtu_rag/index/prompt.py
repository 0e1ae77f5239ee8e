"""Retrieved passages -> numbered context with sources -> the prompt a chat model answers.

Kept free of any framework so that the CLI, the LangChain chain and anyone else build the very
same context: passage numbers let the model cite ``[n]`` and the reader find the source file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

SYSTEM_PROMPT = (
    "You answer questions using only the numbered passages you are given. Cite the passages "
    "you rely on by their number in square brackets, like [1] or [2][3]. If the passages do "
    "not contain the answer, say that you do not know."
)
#: The user turn; ``{context}`` and ``{question}`` are filled in.
USER_TEMPLATE = "Passages:\n\n{context}\n\nQuestion: {question}"


class Sourced(Protocol):
    """Anything with a text and where it came from, such as a search hit."""

    @property
    def text(self) -> str: ...

    @property
    def source(self) -> str | None: ...


@dataclass(frozen=True)
class Passage:
    """A text and its source, for callers holding neither hits nor documents."""

    text: str
    source: str | None = None


def format_passage(number: int, passage: Sourced) -> str:
    """``[n] source: PATH`` on one line, the passage text below it.

    Args:
        number: the citation number.
        passage: text and source (``None``: the header has no source).

    Returns:
        The formatted passage.
    """
    header = f"[{number}]" if passage.source is None else f"[{number}] source: {passage.source}"
    return f"{header}\n{passage.text.strip()}"


def format_context(passages: Iterable[Sourced]) -> str:
    """The passages numbered from 1, blank-line separated: the context a chat model reads.

    Args:
        passages: in the order given (best first).

    Returns:
        The context text.
    """
    return "\n\n".join(
        format_passage(number, passage) for number, passage in enumerate(passages, start=1)
    )


def format_sources(passages: Iterable[Sourced]) -> str:
    """One ``[n] source`` line per passage: the key to the citations in an answer.

    Args:
        passages: in citation order.

    Returns:
        The lines, ``(unknown source)`` where a passage has none.
    """
    return "\n".join(
        f"[{number}] {passage.source or '(unknown source)'}"
        for number, passage in enumerate(passages, start=1)
    )


def build_messages(question: str, passages: Sequence[Sourced]) -> list[tuple[str, str]]:
    """The (role, content) messages of the default prompt, for any chat API.

    Args:
        question: the user's question.
        passages: retrieved passages, best first.

    Returns:
        The system message and the user message with the numbered context.
    """
    return [
        ("system", SYSTEM_PROMPT),
        ("user", USER_TEMPLATE.format(context=format_context(passages), question=question)),
    ]
