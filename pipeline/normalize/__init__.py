"""Normalize stage: turn an ``Extracted`` page (the page's own strings) into a typed record.

    extract --Extracted--> normalize --TopicPageRecord | ArticleRecord | None--> store

Pure functions, no HTML parsing: dates become ISO 8601 strings, comment counts ints, text clean
Unicode paragraphs. Every parser here returns None for a value it cannot read with confidence,
never a guess: a bare "9" is not a date, "Comments are closed" is not a count.

Parsers live beside their subject: ``dates``, ``counts``, ``text``; this module builds records.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from datetime import datetime
from urllib.parse import urldefrag

from pipeline.config import SiteConfig
from pipeline.models import (
    ArticlePage,
    ArticleRecord,
    CardRecord,
    Extracted,
    ListingPage,
    Target,
    TopicPageRecord,
)
from pipeline.normalize.counts import parse_count
from pipeline.normalize.dates import parse_date
from pipeline.normalize.text import clean_text, word_count

__all__ = [
    "clean_text",
    "content_hash",
    "normalize",
    "parse_count",
    "parse_date",
    "word_count",
]

_AUTHOR_PREFIX = re.compile(r"^(?:posted\s+by|written\s+by|by|author)\s*:?\s+", re.IGNORECASE)


def content_hash(
    *,
    title: str | None,
    published_at: str | None,
    updated_at: str | None,
    author: str | None,
    comment_count: int | None,
    summary: str | None,
    text: str | None,
    topics: Iterable[str],
) -> str:
    """Hash the normalized fields that make an article's content, so an unchanged page hashes
    the same on every crawl.

    Returns:
        The SHA-256 hex digest of a canonical JSON of the fields.
    """
    payload = {
        "title": title,
        "published_at": published_at,
        "updated_at": updated_at,
        "author": author,
        "comment_count": comment_count,
        "summary": summary,
        "text": text,
        "topics": list(topics),
    }
    encoded = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def normalize(
    extracted: Extracted,
    target: Target,
    *,
    fetched_at: datetime,
    site: SiteConfig,
) -> TopicPageRecord | ArticleRecord | None:
    """Turn an extracted page into the record stored for it.

    Args:
        extracted: what ``extract`` read from the page.
        target: the frontier's target of the page (canonical URL, topic URL, page number).
        fetched_at: tz-aware time of the fetch: the "now" of relative dates.
        site: the site's config (name, timezone of dates written without offset, day_first).

    Returns:
        A ``TopicPageRecord`` for a listing, an ``ArticleRecord`` for an article, None for any
        other page (only its links matter).
    """
    if isinstance(extracted, ListingPage):
        return _normalize_listing(extracted, target, fetched_at=fetched_at, site=site)
    if isinstance(extracted, ArticlePage):
        return _normalize_article(extracted, target, fetched_at=fetched_at, site=site)
    return None


def _normalize_listing(
    page: ListingPage, target: Target, *, fetched_at: datetime, site: SiteConfig
) -> TopicPageRecord:
    """A topic page record from a listing page."""
    cards = tuple(
        CardRecord(
            url=urldefrag(card.url).url,
            title=clean_text(card.title),
            published_at=parse_date(
                card.date, timezone=site.timezone, now=fetched_at, day_first=site.day_first
            ),
            comment_count=parse_count(card.comments),
            summary=clean_text(card.summary),
        )
        for card in page.cards
    )
    return TopicPageRecord(
        site=site.name,
        topic_url=target.topic_url or page.url,
        page_url=page.url,
        page_no=target.page_no,
        name=clean_text(page.name),
        description=clean_text(page.description),
        cards=cards,
        fetched_at=fetched_at,
    )


def _normalize_article(
    page: ArticlePage, target: Target, *, fetched_at: datetime, site: SiteConfig
) -> ArticleRecord:
    """An article record from an article page."""
    title = clean_text(page.title)
    published_at = parse_date(
        page.published, timezone=site.timezone, now=fetched_at, day_first=site.day_first
    )
    updated_at = parse_date(
        page.updated, timezone=site.timezone, now=fetched_at, day_first=site.day_first
    )
    author = _clean_author(page.author)
    comment_count = parse_count(page.comments)
    summary = clean_text(page.summary)
    text = clean_text(page.text)
    topics = _topic_names(ref.name for ref in page.topics)
    return ArticleRecord(
        site=site.name,
        url=target.url,
        title=title,
        published_at=published_at,
        updated_at=updated_at,
        author=author,
        comment_count=comment_count,
        summary=summary,
        text=text,
        topics=topics,
        language=_clean_language(page.language),
        word_count=word_count(text),
        content_hash=content_hash(
            title=title,
            published_at=published_at,
            updated_at=updated_at,
            author=author,
            comment_count=comment_count,
            summary=summary,
            text=text,
            topics=topics,
        ),
        fetched_at=fetched_at,
        sources=dict(page.sources),
    )


def _clean_author(author: str | None) -> str | None:
    """An author name without a "By " lead-in."""
    cleaned = clean_text(author)
    if cleaned is None:
        return None
    return clean_text(_AUTHOR_PREFIX.sub("", cleaned.replace("\n\n", " ")))


def _topic_names(names: Iterable[str]) -> tuple[str, ...]:
    """Clean topic names, first occurrence kept, empties dropped."""
    seen: dict[str, None] = {}
    for name in names:
        cleaned = clean_text(name)
        if cleaned:
            seen.setdefault(cleaned.replace("\n\n", " "), None)
    return tuple(seen)


def _clean_language(language: str | None) -> str | None:
    """The lowercase primary subtag of a language tag (``en-GB`` -> ``en``)."""
    if not language:
        return None
    primary = re.split(r"[-_]", language.strip(), maxsplit=1)[0].lower()
    return primary if re.fullmatch(r"[a-z]{2,3}", primary) else None
