"""Normalize stage, counts: comment counts as written ("1,234", "1.2k", "No comments") to int.

A missing or unreadable count is None, never 0; "Comments are closed" is not a count.
"""

from __future__ import annotations

import re

__all__ = ["parse_count"]

_ZERO_PHRASES = re.compile(
    r"^(?:no\s+(?:comments?|responses?|replies)(?:\s+yet)?|leave\s+a\s+(?:comment|reply)"
    r"|be\s+the\s+first\s+to\s+comment|add\s+a\s+comment)[.!]?$"
)
_COUNT_WORDS = r"(?:comments?|responses?|replies|reply|thoughts?)"
_NUMBER = r"(?P<num>\d{1,3}(?:[,.\u202f ]\d{3})+|\d+(?:[.,]\d+)?)\s*(?P<mult>[km])?"
_COUNT = re.compile(
    rf"^(?:comments?\s*[:(]?\s*)?\(?{_NUMBER}\)?(?:\s+{_COUNT_WORDS}(?:\s+on\b.*)?)?\s*[:.]?$",
    re.ASCII | re.DOTALL,
)
_WORD_NUMBERS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5"}


def parse_count(text: str | None) -> int | None:
    """Read a comment count as a page writes it.

    ``"9"``, ``"1,234"``, ``"1.2k"``, ``"12 Comments"``, ``"1 Comment"`` give ints; ``"No
    comments"`` and ``"Leave a comment"`` give 0; ``"Comments are closed"``, ``""``, None and
    anything that is not a count give None.

    Args:
        text: the count as written on the page.

    Returns:
        The count, or None when the text states none.
    """
    if text is None:
        return None
    value = " ".join(str(text).replace("\xa0", " ").split()).lower()
    if not value or len(value) > 200:
        return None
    if _ZERO_PHRASES.match(value):
        return 0
    first, _, rest = value.partition(" ")
    if first in _WORD_NUMBERS and rest:
        value = f"{_WORD_NUMBERS[first]} {rest}"
    match = _COUNT.match(value)
    if match is None:
        return None
    return _count_value(match.group("num"), match.group("mult"))


def _count_value(number: str, multiplier: str | None) -> int | None:
    """The int of a matched count number with an optional k/m suffix."""
    if multiplier:
        try:
            scaled = float(number.replace(",", "."))
        except ValueError:
            return None
        return round(scaled * (1000 if multiplier == "k" else 1_000_000))
    digits = re.sub(r"[,.\u202f ]", "", number)
    if not re.fullmatch(r"\d{1,3}(?:[,.\u202f ]\d{3})+|\d+", number):
        return None  # "1.5" without a k is not a count
    return int(digits)
