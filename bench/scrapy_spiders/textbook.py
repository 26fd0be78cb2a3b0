"""The textbook CrawlSpider: two rules, follow topic listings, parse articles."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from scrapy.linkextractors import LinkExtractor
from scrapy.spiders import CrawlSpider, Rule

from bench.scrapy_spiders import fields


def _no_query(url: str) -> str:
    """Drop the query (the sidebar's utm_ links), as crawldex's strip_params does."""
    return urlunsplit(urlsplit(url)._replace(query="", fragment=""))


class TextbookSpider(CrawlSpider):
    name = "textbook"
    rules = (
        Rule(
            LinkExtractor(allow=fields.TOPIC_RE, process_value=_no_query),
            callback="parse_listing",
            follow=True,
        ),
        Rule(
            LinkExtractor(allow=fields.ARTICLE_RE, process_value=_no_query),
            callback="parse_article",
        ),
    )

    def __init__(self, base: str = "", *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start_urls = [f"{base}/"]
        self.allowed_domains = [urlsplit(base).hostname or ""]

    def parse_listing(self, response: Any) -> Iterator[dict[str, Any]]:
        yield fields.listing(response)

    def parse_article(self, response: Any) -> Iterator[dict[str, Any]]:
        yield fields.article(response)
