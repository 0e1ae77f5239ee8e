# ruff: noqa: RUF001  (Chinese text holds full-width punctuation on purpose)
"""The lexical analyzer: Latin words stemmed, CJK runs as bigrams, codes kept whole."""

from __future__ import annotations

import pytest

from youtu_rag.index.analyzer import Analyzer


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


def test_english_is_lower_cased_stemmed_and_stopwords_dropped(analyzer: Analyzer) -> None:
    assert analyzer.terms("The Running dogs are RUNNING to the parks") == [
        "run",
        "dog",
        "run",
        "park",
    ]


def test_without_a_stemmer_words_stay_whole(analyzer: Analyzer) -> None:
    assert Analyzer(language=None).terms("The running dogs") == ["running", "dogs"]
    assert Analyzer(language=None, stopwords=frozenset()).terms("The dogs") == ["the", "dogs"]


def test_chinese_runs_become_overlapping_bigrams(analyzer: Analyzer) -> None:
    assert analyzer.terms("汽车保险理赔。车辆保障") == [
        "汽车",
        "车保",
        "保险",
        "险理",
        "理赔",
        "车辆",
        "辆保",
        "保障",
    ]


def test_a_lone_cjk_character_is_a_unigram(analyzer: Analyzer) -> None:
    assert analyzer.terms("猫 和 狗") == ["猫", "和", "狗"]


def test_a_chinese_query_shares_bigrams_with_a_text_holding_its_words(
    analyzer: Analyzer,
) -> None:
    text = set(analyzer.terms("本公司的汽车保险理赔流程需要三个工作日。"))
    assert set(analyzer.terms("汽车保险")) <= text
    assert set(analyzer.terms("理赔流程")) <= text


def test_japanese_and_korean_become_bigrams(analyzer: Analyzer) -> None:
    assert analyzer.terms("東京タワー") == ["東京", "京タ", "タワ", "ワー"]
    assert analyzer.terms("서울특별시") == ["서울", "울특", "특별", "별시"]


def test_codes_give_their_parts_and_the_joined_code(analyzer: Analyzer) -> None:
    assert analyzer.terms("ABC-123") == ["abc", "123", "abc123"]
    assert analyzer.terms("abc123") == ["abc", "123", "abc123"]
    assert analyzer.terms("v2.1") == ["v", "2", "v2", "1", "v21"]


def test_a_code_inside_chinese_keeps_its_neighbouring_characters(analyzer: Analyzer) -> None:
    terms = analyzer.terms("请看第10句话")
    assert "10" in terms and "第10句" in terms
    assert set(analyzer.terms("第10句")) & set(terms) == {"10", "第10句"}
    order = analyzer.terms("订单号ABC-123已发货")
    assert {"订单", "单号", "abc", "123", "abc123", "已发", "发货"} <= set(order)


def test_mixed_chinese_and_english(analyzer: Analyzer) -> None:
    assert analyzer.terms("中文English混合Testing") == ["中文", "english", "混合", "test"]


def test_full_width_letters_and_digits_are_ascii(analyzer: Analyzer) -> None:
    assert analyzer.terms("ＡＢＣ－１２３") == analyzer.terms("ABC-123")


def test_punctuation_only_gives_no_terms(analyzer: Analyzer) -> None:
    assert analyzer.terms("，。！？ -- ...") == []


def test_bad_input(analyzer: Analyzer) -> None:
    with pytest.raises(TypeError, match="string"):
        analyzer.terms(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="klingon"):
        Analyzer(language="klingon")
