# ruff: noqa: RUF001  (Chinese text and punctuation, on purpose)
"""Generated Chinese and English corpora for the chunking tests and benchmark: varied sentences
in long paragraphs, mixed with Latin terms, numbers (第10句) and codes (ABC-123).

Every sentence carries a running number, so no two sentences are equal and a chunk can be found
again in the text it came from.
"""

from __future__ import annotations

import random

_ZH_SUBJECTS = [
    "研究团队",
    "这位厨师",
    "市博物馆",
    "我们的工程师",
    "Chroma 数据库",
    "LangChain 框架",
    "这台 GPU 服务器",
    "小王和他的同事",
    "考古学家",
    "新来的用户",
    "Youtu-Embedding 模型",
    "图书馆的管理员",
]
_ZH_CLAUSES = [
    "在第{n}句中提到了型号为ABC-{m}的机器",
    "用当地的食材做出了一道有名的菜",
    "在河边发现了一批珍贵的青铜器",
    "把 Python 3.{d} 升级到了最新的版本",
    "在2024年{mo}月完成了{k}项测试",
    "记录了编号为XK{m}的样本",
    "花了{k}个小时整理第{n}段的资料",
    "认为 RAG 系统需要更好的检索",
    "向大家介绍了 BM25 和向量检索的区别",
    "把温度控制在{k}摄氏度左右",
    "在会议上展示了 v{d}.{k} 版本的结果",
    "说这件事情并没有那么简单",
]
_ZH_ENDS = ["。", "。", "。", "！", "？", "；", "……"]

_EN_SUBJECTS = [
    "The research team",
    "Our chef",
    "The city museum",
    "An engineer",
    "The Chroma database",
    "The LangChain framework",
    "This GPU server",
    "Wang and his colleagues",
    "The archaeologist",
    "A new user",
]
_EN_CLAUSES = [
    "mentioned machine ABC-{m} in sentence {n}",
    "cooked a famous dish with local ingredients",
    "found a batch of rare bronze vessels by the river",
    "upgraded Python 3.{d} to the latest release",
    "finished {k} tests in month {mo} of 2024",
    "recorded sample XK{m} for the second time",
    "spent {k} hours sorting the notes of part {n}",
    "argued that retrieval needs better chunks",
    "explained how BM25 differs from dense retrieval",
    "kept the temperature near {k} degrees",
]
_EN_ENDS = [".", ".", ".", "!", "?"]


def _values(rng: random.Random, n: int) -> dict[str, int]:
    return {
        "n": n,
        "m": rng.randint(100, 9999),
        "d": rng.randint(1, 12),
        "k": rng.randint(2, 500),
        "mo": rng.randint(1, 12),
    }


def chinese_sentence(rng: random.Random, n: int) -> str:
    clauses = [rng.choice(_ZH_CLAUSES).format(**_values(rng, n)) for _ in range(rng.randint(1, 3))]
    sentence = rng.choice(_ZH_SUBJECTS) + "，".join(clauses)
    if rng.random() < 0.15:
        return f"他说：“{sentence}。”"
    return sentence + rng.choice(_ZH_ENDS)


def english_sentence(rng: random.Random, n: int) -> str:
    clauses = [rng.choice(_EN_CLAUSES).format(**_values(rng, n)) for _ in range(rng.randint(1, 3))]
    sentence = rng.choice(_EN_SUBJECTS) + " " + ", and ".join(clauses)
    if rng.random() < 0.15:
        return f'He said: "{sentence}."'
    return sentence + rng.choice(_EN_ENDS)


def chinese_corpus(min_bytes: int, seed: int = 19) -> str:
    """Paragraphs of 10 to 40 Chinese sentences (mixed with Latin terms) until ``min_bytes``
    of UTF-8."""
    rng = random.Random(seed)
    paragraphs: list[str] = []
    size = 0
    n = 1
    while size < min_bytes:
        count = rng.randint(10, 40)
        paragraph = "".join(chinese_sentence(rng, n + i) for i in range(count))
        n += count
        paragraphs.append(paragraph)
        size += len(paragraph.encode("utf-8")) + 2
    return "\n\n".join(paragraphs)


def english_corpus(min_bytes: int, seed: int = 19) -> str:
    """Paragraphs of 8 to 30 English sentences until ``min_bytes``."""
    rng = random.Random(seed)
    paragraphs: list[str] = []
    size = 0
    n = 1
    while size < min_bytes:
        count = rng.randint(8, 30)
        paragraph = " ".join(english_sentence(rng, n + i) for i in range(count))
        n += count
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    return "\n\n".join(paragraphs)
