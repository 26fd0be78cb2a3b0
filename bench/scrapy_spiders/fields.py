"""The fields both spiders extract, with parsel (Scrapy's selectors): crawldex's record fields."""

from __future__ import annotations

import re
from typing import Any

ARTICLE_RE = r"/[0-9]{4}/[0-9]{2}/[a-z0-9-]+/$"
TOPIC_RE = r"/topics/[a-z0-9-]+/(?:page/[0-9]+/)?$"


def _comment_count(text: str) -> int | None:
    """'12 Comments' -> 12, 'Leave a comment' -> 0, 'Comments are closed' -> None."""
    number = re.search(r"[0-9][0-9,]*", text)
    if number:
        return int(number.group().replace(",", ""))
    return 0 if "leave a comment" in text.lower() else None


def article(response: Any) -> dict[str, Any]:
    """An article page's record: title, dates, author, comments, summary, text, topics."""
    comments = _comment_count(" ".join(response.css(".comments-link ::text").getall()))
    paragraphs = [
        "".join(p.css("::text").getall()).strip() for p in response.css(".entry-content > p")
    ]
    return {
        "kind": "article",
        "url": response.url,
        "title": response.css("h1.entry-title::text").get("").strip(),
        "published_at": response.css("time.published::attr(datetime)").get(),
        "updated_at": response.css("time.updated::attr(datetime)").get(),
        "author": response.css(".byline .author a::text").get("").strip(),
        "comment_count": comments,
        "summary": response.css('meta[name="description"]::attr(content)').get(),
        "text": "\n\n".join(p for p in paragraphs if p),
        "topics": response.css(".cat-links a::text").getall(),
        "language": (response.css("html::attr(lang)").get() or "")[:2] or None,
    }


def listing(response: Any) -> dict[str, Any]:
    """A topic listing page: name, description and the article URLs of its cards."""
    return {
        "kind": "topic_page",
        "url": response.url,
        "name": response.css("h1.page-title::text").get("").strip(),
        "description": "\n\n".join(
            "".join(p.css("::text").getall()).strip()
            for p in response.css(".archive-description p")
        ),
        "article_urls": response.css(".post-card h2.entry-title a::attr(href)").getall(),
    }
