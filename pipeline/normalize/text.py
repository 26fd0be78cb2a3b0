"""Normalize stage, text: clean page strings into NFC paragraphs; count words.

Pure functions on strings; used for every text field of a record.
"""

from __future__ import annotations

import html
import re
import unicodedata
from itertools import filterfalse

__all__ = ["clean_text", "word_count"]

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\ufeff\u2060"), None)
_CONTROLS = dict.fromkeys([*range(0, 9), 11, 12, *range(14, 32), 127], " ")
_LINE_BREAKS = str.maketrans({"\r": "\n", "\x85": "\n", "\u2028": "\n", "\u2029": "\n\n"})
_ODD_CHARS = {**_ZERO_WIDTH, **_LINE_BREAKS, **_CONTROLS}  # disjoint keys: one table, one pass
_HAS_ODD = re.compile("[" + re.escape("".join(map(chr, _ODD_CHARS))) + "]")
# str.translate with a dict costs a lookup per character: only run it when there is work to do.
_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);?")
_WORD = re.compile(r"\w+(?:(?:['\u2019-]|(?<=\d)[.,](?=\d))\w+)*")
_AUTHOR_PREFIX = re.compile(r"^(?:posted\s+by|written\s+by|by|author)\s*:?\s+", re.IGNORECASE)


def clean_text(text: str | None) -> str | None:
    """Clean a page string into plain Unicode paragraphs.

    Decodes leftover HTML entities, turns NBSP and other spaces into spaces, drops zero-width
    characters, collapses whitespace inside a paragraph to one space, separates paragraphs (text
    parted by a blank line) by exactly ``"\\n\\n"``, strips, and applies Unicode NFC. Curly
    quotes and dashes are kept. ``clean_text(clean_text(x)) == clean_text(x)``.

    Args:
        text: the raw string; None is allowed.

    Returns:
        The cleaned text, or None when nothing but whitespace is left.
    """
    if not text:
        return None
    result = _clean_once(text)
    if "&" not in result or _ENTITY.search(result) is None:
        # Only decoding an entity can leave work for another pass: a pass ends with NFC text,
        # no odd characters and whitespace collapsed, which the next pass would keep as is
        # (a bare "&", as in "Q&A", decodes to nothing).
        return result or None
    for _ in range(4):  # entity decoding or NFC can reveal more to clean; settle on a fixpoint
        again = _clean_once(result)
        if again == result:
            break
        result = again
    return result or None


def _clean_once(text: str) -> str:
    """One pass of the cleaning steps of ``clean_text``."""
    text = unicodedata.normalize("NFC", text)
    while "&" in text and _ENTITY.search(text):
        decoded = html.unescape(text)
        if decoded == text:
            break
        text = decoded
    if _HAS_ODD.search(text):
        text = text.translate(_ODD_CHARS)
    paragraphs: list[str] = []
    lines: list[str] = []
    for line in [*text.split("\n"), ""]:
        words = line.split()
        if words:
            lines.extend(words)
        elif lines:
            paragraphs.append(" ".join(lines))
            lines = []
    return unicodedata.normalize("NFC", "\n\n".join(paragraphs))


def word_count(text: str | None) -> int:
    """Count the words of a text (runs of letters/digits, inner hyphens and apostrophes kept).

    Args:
        text: cleaned text or None.

    Returns:
        The number of words; 0 for None.
    """
    if not text:
        return 0
    # A whitespace-separated token that is all letters and digits is one word (str.isalnum
    # holds only for \w characters); the regex counts the rest (~13 % of a page's tokens).
    tokens = text.split()
    simple = sum(map(str.isalnum, tokens))
    if simple == len(tokens):
        return simple
    return simple + _WORD.subn("", " ".join(filterfalse(str.isalnum, tokens)))[1]
