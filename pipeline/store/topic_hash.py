"""A topic's content hash, kept up to date a page at a time (schema 7).

A topic's content is its name, its description and the article list of every one of its pages.
Hashing all the pages again whenever one of them was stored made a walk of a topic quadratic in
its pages: at 20k articles (~350 pages a topic) the crawl's process read and hashed ~600,000
page lists; at 100k, 25 times as many. Now each page contributes its own digest, a SHA-256 of
its URL, number and article list read as a 256-bit number, and a topic keeps the sum of its
pages' digests modulo 2**256 (``topics.pages_sum``, hex). Storing a page subtracts what it
contributed before and adds what it contributes now; the topic's hash is taken over its name,
description and that sum. A page's number and URL are in its digest, so the sum stands for the
pages in their order, as the whole-topic hash did.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

__all__ = ["EMPTY_SUM", "add_page", "page_digest", "pages_sum", "topic_hash"]

_MODULUS = 1 << 256
#: ``pages_sum`` of a topic with no pages.
EMPTY_SUM = "0"


def page_digest(page_url: str, page_no: int, article_urls: str) -> int:
    """What one stored topic page contributes to its topic's sum (``article_urls`` as stored:
    its JSON list)."""
    data = f"{page_no}\0{page_url}\0{article_urls}".encode()
    return int.from_bytes(hashlib.sha256(data).digest(), "big")


def add_page(pages_sum: str, digest: int, *, times: int = 1) -> str:
    """``pages_sum`` with ``digest`` added ``times`` times (-1: the page taken out)."""
    return format((int(pages_sum, 16) + times * digest) % _MODULUS, "x")


def pages_sum(pages: Iterable[tuple[str, int, str]]) -> str:
    """The sum of ``(page URL, number, article list)`` pages worked out from scratch."""
    total = EMPTY_SUM
    for page_url, page_no, article_urls in pages:
        total = add_page(total, page_digest(page_url, page_no, article_urls))
    return total


def topic_hash(name: str | None, description: str | None, pages_sum: str) -> str:
    """SHA-256 of a topic's content: its name, its description and its pages' sum."""
    head = json.dumps([name, description], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{head}\n{pages_sum}".encode()).hexdigest()
