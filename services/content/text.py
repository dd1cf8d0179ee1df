"""The search analyzer: one way of cutting text into terms, for the index and for queries,
on both stores (docs/decisions/0039).

Chinese is cut into words by jieba (search mode for the index, so a long word also yields
the shorter words inside it); Latin words are folded to lower case and stemmed by the
English Snowball stemmer (study, studies and studying meet at `studi`); digits stay as they
are. The stores receive the terms ready-made, separated by spaces: SQLite's FTS5 splits them
with `unicode61` and PostgreSQL with the `simple` configuration, and neither changes a term.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import unicodedata
from collections.abc import Iterable

import jieba
import snowballstemmer

# A term longer than this is noise (a pasted hash, a run of letters), not a word to find.
MAX_TERM_LENGTH = 40
# A query asks for at most this many terms: each one is one more list for the index to merge.
MAX_QUERY_TERMS = 12

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Runs of Chinese characters, and runs of letters or digits (an ASCII word like "c++" loses
# its signs, which both stores would drop anyway).
_RUNS = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+")
_IS_CJK = re.compile(rf"[{_CJK}]")
# Every ASCII character but lowercase letters and digits, as a space.
_ASCII_SPACES = str.maketrans(
    {chr(code): " " for code in range(128) if not chr(code).isdigit() and not chr(code).islower()}
)

_stemmer = snowballstemmer.stemmer("english")
_loading = threading.Lock()
_segmenter: jieba.Tokenizer | None = None


def _jieba() -> jieba.Tokenizer:
    """jieba's dictionary, loaded once per process (about a second: app.py loads it at start)."""
    global _segmenter
    if _segmenter is None:
        with _loading:
            if _segmenter is None:
                jieba.setLogLevel(logging.WARNING)
                segmenter = jieba.Tokenizer()
                segmenter.initialize()
                _segmenter = segmenter
    return _segmenter


def load() -> None:
    _jieba()


def index_terms(*texts: str) -> list[str]:
    """The terms of `texts` as the index keeps them, in order, repeats kept (they rank)."""
    return _terms(texts, for_query=False)


def query_terms(text: str) -> list[str]:
    """The distinct terms a query asks for, in order; every one must match."""
    distinct = dict.fromkeys(_terms([text], for_query=True))
    return list(distinct)[:MAX_QUERY_TERMS]


def community_term(community_id: str) -> str:
    """A term naming the community, held by each of its documents: the index itself then
    keeps a search inside one community."""
    return "c" + community_id.replace("-", "")


# Documents are grouped in blocks of 65,536 consecutive ids (PostgreSQL only; migration 0017).
BLOCK_BITS = 16


def block_term(community_id: str, block: int) -> str:
    """The term a PostgreSQL document of `community_id` holds when its id >> BLOCK_BITS is
    `block`: search asks a community's newest blocks before the whole community."""
    return "r" + community_id.replace("-", "") + "x" + str(block)


def _terms(texts: Iterable[str], *, for_query: bool) -> list[str]:
    terms: list[str] = []
    for text in texts:
        if text.isascii():
            # NFKC leaves ASCII as it is and it holds no Chinese: its runs are the runs of
            # letters and digits, split out in C (half the cost of the Unicode pattern; most
            # posts are ASCII, and their analysis is most of what a post costs to index).
            runs = text.lower().translate(_ASCII_SPACES).split()
            if runs and max(map(len, runs)) > MAX_TERM_LENGTH:
                # Dropped before the memo, which would keep them (rare: looked for in C).
                runs = [run for run in runs if len(run) <= MAX_TERM_LENGTH]
            terms += map(_latin, runs)
            continue
        folded = unicodedata.normalize("NFKC", text).lower()
        for run in _RUNS.findall(folded):
            if _IS_CJK.match(run):
                terms += _chinese(run, for_query=for_query)
            elif len(run) <= MAX_TERM_LENGTH:
                terms.append(_latin(run))
    return terms


@functools.lru_cache(maxsize=200_000)
def _latin(word: str) -> str:
    """A word's term. The stemmer is pure Python (about 16 us a word, 5 ms for a
    2,000-character article) and the words of a language repeat: kept once computed."""
    return word if word.isdigit() else str(_stemmer.stemWord(word))


def _chinese(run: str, *, for_query: bool) -> Iterable[str]:
    if len(run) == 1:
        yield run
        return
    segmenter = _jieba()
    # The index takes the search mode's shorter words too; a query takes the precise cut,
    # whose words the index then holds.
    words = segmenter.cut(run) if for_query else segmenter.cut_for_search(run)
    for word in words:
        if word and len(word) <= MAX_TERM_LENGTH:
            yield word
