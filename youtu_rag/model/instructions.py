"""Youtu-Embedding's instruction prefix and the C-MTEB task instructions it was evaluated with.

The model is asymmetric: a query is embedded as ``QUERY_TEMPLATE.format(task=...) + query`` and a
retrieval document with no prefix at all. For symmetric tasks (STS, pair classification,
classification, clustering) both sides carry the same instruction. The task texts are those
published in TencentCloudADP/youtu-embedding ``evaluation/youtu_models.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Side = Literal["query", "document"]

#: Published inference format; no trailing space after "Query:" (the inference scripts and the
#: model's sentence-transformers config agree on this).
QUERY_TEMPLATE = "Instruction: {task} \nQuery:"

DEFAULT_QUERY_TASK = "Given a search query, retrieve passages that answer the question"


@dataclass(frozen=True)
class TaskInstruction:
    """One C-MTEB task: its instruction, and whether documents carry it too."""

    task: str
    symmetric: bool


def _retrieval(task: str) -> TaskInstruction:
    return TaskInstruction(task, symmetric=False)


def _symmetric(task: str) -> TaskInstruction:
    return TaskInstruction(task, symmetric=True)


_CHINESE_WEB = "Given a Chinese search query, retrieve web passages that answer the question"
_WEB = "Given a web search query, retrieve relevant passages that answer the query"
_MEDICAL_QA = (
    "Given a Chinese community medical question, retrieve replies that best answer the question"
)
_FINANCE_CS = (
    "Represent the text in conversations between users and financial customer service, "
    "retrieve semantically similar text"
)
_SIMILAR = "Retrieve semantically similar text"

#: The 31 C-MTEB tasks by their MTEB names.
CMTEB_INSTRUCTIONS: dict[str, TaskInstruction] = {
    # retrieval
    "CmedqaRetrieval": _retrieval(_MEDICAL_QA),
    "CovidRetrieval": _retrieval(
        "Given a question on COVID-19, retrieve news articles that answer the question"
    ),
    "DuRetrieval": _retrieval(_CHINESE_WEB),
    "EcomRetrieval": _retrieval(
        "Given a user query from an e-commerce website, "
        "retrieve description sentences of relevant products"
    ),
    "MedicalRetrieval": _retrieval(
        "Given a medical question, retrieve user replies that best answer the question"
    ),
    "MMarcoRetrieval": _retrieval(_WEB),
    "T2Retrieval": _retrieval(_CHINESE_WEB),
    "VideoRetrieval": _retrieval(
        "Given a video search query, retrieve the titles of relevant videos"
    ),
    # reranking
    "T2Reranking": _retrieval(_CHINESE_WEB),
    "MMarcoReranking": _retrieval(_WEB),
    "CMedQAv1-reranking": _retrieval(_MEDICAL_QA),
    "CMedQAv2-reranking": _retrieval(_MEDICAL_QA),
    # STS
    "AFQMC": _symmetric(_FINANCE_CS),
    "ATEC": _symmetric(_FINANCE_CS),
    "BQ": _symmetric(
        "Represent the user problem descriptions when handling bank credit business, "
        "retrieve semantically similar text"
    ),
    "LCQMC": _symmetric(
        "Represent the user question descriptions on general question-answering platforms, "
        "retrieve semantically similar text"
    ),
    "PAWSX": _symmetric(
        "Represent the Chinese Translations of English Encyclopedias, "
        "retrieve semantically similar text"
    ),
    "QBQTC": _symmetric("Represent the web search query, retrieve semantically similar text"),
    "STSB": _symmetric(
        "Represent the short general domain sentences, retrieve semantically similar text"
    ),
    # pair classification
    "Ocnli": _symmetric(_SIMILAR),
    "Cmnli": _symmetric(_SIMILAR),
    # classification
    "TNews": _symmetric("Classify the fine-grained category of the given news title"),
    "IFlyTek": _symmetric(
        "Given an App description text, find the appropriate fine-grained category"
    ),
    "Waimai": _symmetric(
        "Classify the customer review from a food takeaway platform into positive or negative"
    ),
    "OnlineShopping": _symmetric(
        "Classify the customer review for online shopping into positive or negative"
    ),
    "JDReview": _symmetric(
        "Classify the customer review for iPhone on e-commerce platform into positive or negative"
    ),
    "MultilingualSentiment": _symmetric(
        "Classify sentiment of the customer review into positive, neutral, or negative"
    ),
    # clustering
    "CLSClusteringS2S": _symmetric(
        "Given the papers, find the appropriate fine-grained topic or theme based on the titles"
    ),
    "CLSClusteringP2P": _symmetric(
        "Given the papers, find the appropriate fine-grained topic or theme "
        "based on the titles and abstracts"
    ),
    "ThuNewsClusteringS2S": _symmetric(
        "Identify the topic or theme of the given news articles based on the titles"
    ),
    "ThuNewsClusteringP2P": _symmetric(
        "Identify the topic or theme of the given news articles based on the titles and contents"
    ),
}


def resolve_task(name_or_task: str, side: Side) -> str:
    """Turn a preset name or free task text into the task text for one side.

    Args:
        name_or_task: a C-MTEB task name (see :data:`CMTEB_INSTRUCTIONS`), free task text, or
            ``""`` for no instruction.
        side: ``"query"`` or ``"document"``.

    Returns:
        A preset's published instruction, except on the document side of a retrieval or
        reranking task, where documents carry none (``""``); any other string unchanged.
    """
    preset = CMTEB_INSTRUCTIONS.get(name_or_task)
    if preset is None:
        return name_or_task
    if side == "document" and not preset.symmetric:
        return ""
    return preset.task


def format_prefix(task: str, template: str = QUERY_TEMPLATE) -> str:
    """The verbatim prefix for a task text.

    Args:
        task: the task text; ``""`` for none.
        template: a template with one ``{task}`` field.

    Returns:
        The prefix; an empty task gives an empty prefix.
    """
    return template.format(task=task) if task else ""
