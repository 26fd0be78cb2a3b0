"""The hand-tuned spider: only topic listings, their next pages and their cards' articles."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import scrapy

from bench.scrapy_spiders import fields


class TunedSpider(scrapy.Spider):
    name = "tuned"

    def __init__(self, base: str = "", *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start_urls = [f"{base}/"]

    def parse(self, response: Any) -> Iterator[Any]:
        """The home page: the menu's topic links only."""
        for href in response.css(".main-navigation a::attr(href)").re(fields.TOPIC_RE.rstrip("$")):
            yield response.follow(href, self.parse_listing)

    def parse_listing(self, response: Any) -> Iterator[Any]:
        record = fields.listing(response)
        yield record
        for href in record["article_urls"]:
            yield response.follow(href, self.parse_article)
        next_page = response.css("a.next.page-numbers::attr(href)").get()
        if next_page:
            yield response.follow(next_page, self.parse_listing)

    def parse_article(self, response: Any) -> Iterator[dict[str, Any]]:
        yield fields.article(response)
