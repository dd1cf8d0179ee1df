"""The search analyzer: the terms the index keeps and a query asks for meet on Chinese words,
English stems and mixed text; what is not a word is dropped."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.content import text
from services.content.text import (
    MAX_QUERY_TERMS,
    MAX_TERM_LENGTH,
    community_term,
    index_terms,
    query_terms,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ("社区运营的定位", "运营"),
        ("社区运营的定位", "定位"),
        ("先做用户画像", "画像"),
        ("每天打卡学习英语", "打卡"),
        ("I am studying English", "study"),
        ("She studies every day", "studying"),
        ("英语学习 study plan", "学习 plans"),
        ("ＦＵＬＬＷＩＤＴＨ Letters", "fullwidth"),  # noqa: RUF001
    ],
)
def test_a_query_finds_the_terms_the_index_keeps(text: str, query: str) -> None:
    assert set(query_terms(query)) <= set(index_terms(text))


def test_signs_and_spaces_are_no_terms() -> None:
    assert query_terms("  ？！…… -- ++ ") == []  # noqa: RUF001
    assert index_terms("c++ & c#") == ["c", "c"]


def test_a_query_counts_each_word_once_and_at_most_twelve() -> None:
    assert query_terms("study studies 打卡 打卡") == ["studi", "打卡"]
    many = " ".join(f"word{n}" for n in range(30))
    assert len(query_terms(many)) == MAX_QUERY_TERMS


def test_the_community_term_is_one_word() -> None:
    term = community_term("0b6f3c1e-8d2a-4f5b-9c7d-1e2f3a4b5c6d")
    assert term == "c0b6f3c1e8d2a4f5b9c7d1e2f3a4b5c6d"
    assert index_terms(term) == [term]


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=200))
def test_ascii_text_is_cut_as_the_unicode_pattern_cuts_it(text: str) -> None:
    # A last word of another script sends the text down the Unicode path; it adds one term.
    assert index_terms(text + " é") == [*index_terms(text), "é"]
    assert query_terms(text + " é")[: len(query_terms(text))] == query_terms(text)


def test_a_run_longer_than_a_term_is_no_term_and_is_not_kept() -> None:
    pasted = "x" * (MAX_TERM_LENGTH + 1)
    assert index_terms(f"{pasted} ok") == ["ok"]
    assert index_terms(f"{pasted} ok é") == ["ok", "é"]
    # The memo of words keeps words that can be terms: pasted noise does not fill it.
    kept = text._latin.cache_info().currsize
    index_terms("q" * 500, "w" * (MAX_TERM_LENGTH + 1) + " é")
    assert text._latin.cache_info().currsize == kept
