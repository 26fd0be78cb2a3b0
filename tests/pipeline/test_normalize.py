"""Normalize stage: the fixtures' extracted JSON in, records out; dates, counts and text tables;
property tests for the parsers."""

from __future__ import annotations

import dataclasses
import json
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import SiteConfig
from pipeline.models import (
    ArticlePage,
    ArticleRecord,
    Card,
    Extracted,
    Link,
    Links,
    ListingPage,
    OtherPage,
    Target,
    TopicPageRecord,
    TopicRef,
)
from pipeline.normalize import (
    clean_text,
    content_hash,
    normalize,
    parse_count,
    parse_date,
    word_count,
)
from pipeline.normalize.text import _ENTITY, _WORD, _clean_once
from tests.pipeline.test_extract import CASES, FIXTURES, fixture_path, jsonable

NOW = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)
CURLY = "\u201ccurly\u201d \u2018quotes\u2019 \u2014 dash"  # kept as they are
SITE = SiteConfig(name="fixtures", start_urls=["http://demo.test/"], timezone="Europe/London")


def extracted_from_json(data: dict[str, Any]) -> Extracted:
    """Rebuild an ``Extracted`` from a fixture's ``extracted`` JSON."""
    links = Links.of(Link(**link) for link in data.get("links", ()))
    fields = {k: v for k, v in data.items() if k not in ("kind", "links")}
    if data["kind"] == "listing":
        fields["cards"] = tuple(Card(**card) for card in fields["cards"])
        fields["page_urls"] = tuple(fields["page_urls"])
        return ListingPage(**fields, links=links)
    if data["kind"] == "article":
        fields["topics"] = tuple(TopicRef(**topic) for topic in fields["topics"])
        return ArticlePage(**fields, links=links)
    return OtherPage(**fields, links=links)


# --- fixtures -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_fixture_record_normalizes_as_expected(name: str) -> None:
    expected = json.loads(fixture_path(name, ".json").read_text(encoding="utf-8"))
    page = extracted_from_json(expected["extracted"])
    target = Target(url=expected["url"], site="fixtures", **expected["target"])
    site = SITE.model_copy(update=expected.get("site", {}))  # e.g. day_first for one site
    record = normalize(page, target, fetched_at=NOW, site=site)
    got = jsonable(record)
    want = expected["record"]
    if want is None:
        assert got is None
        return
    assert got.keys() == want.keys()
    for field in want:
        assert got[field] == want[field], f"{name}: field {field!r}"


def test_fixture_titles_come_out_nfc() -> None:
    expected = json.loads((FIXTURES / "demo_topic.json").read_text(encoding="utf-8"))
    raw = expected["extracted"]["cards"][2]["title"]
    assert raw != unicodedata.normalize("NFC", raw)  # the page writes "Nai\u0308ve"
    record = normalize(
        extracted_from_json(expected["extracted"]),
        Target(url=expected["url"], site="fixtures"),
        fetched_at=NOW,
        site=SITE,
    )
    assert isinstance(record, TopicPageRecord)
    assert "Na\u00efve" in (record.cards[2].title or "")


def test_listing_record_uses_page_url_without_topic_url_and_strips_fragments() -> None:
    page = ListingPage(
        url="https://x.example/tag/a/page/2/",
        name="Category: A",
        description=None,
        cards=(Card(url="https://x.example/post/#comments", title=" T ", date="yesterday"),),
    )
    record = normalize(page, Target(url=page.url, site="x", page_no=2), fetched_at=NOW, site=SITE)
    assert isinstance(record, TopicPageRecord)
    assert (record.topic_url, record.page_url, record.page_no) == (page.url, page.url, 2)
    assert record.cards[0].url == "https://x.example/post/"
    assert record.cards[0].title == "T"
    assert record.cards[0].published_at == "2025-11-19"


def test_article_record_cleans_author_topics_and_hashes_stably() -> None:
    page = ArticlePage(
        url="https://x.example/p/",
        title="Title &amp; more",
        author="By  Jane\u00a0Doe",
        topics=(TopicRef("Heart"), TopicRef("Heart"), TopicRef(" Lungs ")),
        text="One two.\n\n\n Three\u200b four ",
        language="en-GB",
        sources={"title": "meta"},
    )
    target = Target(url="https://x.example/p", site="x")
    first = normalize(page, target, fetched_at=NOW, site=SITE)
    again = normalize(page, target, fetched_at=NOW + timedelta(days=3), site=SITE)
    assert isinstance(first, ArticleRecord)
    assert isinstance(again, ArticleRecord)
    assert (first.url, first.title, first.author) == (target.url, "Title & more", "Jane Doe")
    assert first.topics == ("Heart", "Lungs")
    assert (first.text, first.word_count, first.language) == ("One two.\n\nThree four", 4, "en")
    assert first.content_hash == again.content_hash
    assert first.sources == {"title": "meta"}
    changed = normalize(
        dataclasses.replace(page, comments="3 Comments"), target, fetched_at=NOW, site=SITE
    )
    assert isinstance(changed, ArticleRecord)
    assert changed.content_hash != first.content_hash


def test_other_page_has_no_record() -> None:
    page = OtherPage(url="https://x.example/")
    assert normalize(page, Target(page.url, "x"), fetched_at=NOW, site=SITE) is None


# --- dates --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Nov, 1 2025", "2025-11-01"),
        ("Oct, 28 2025", "2025-10-28"),
        ("1 November 2025", "2025-11-01"),
        ("1st of November, 2025", "2025-11-01"),
        ("November 1, 2025", "2025-11-01"),
        ("Posted on Nov 1, 2025", "2025-11-01"),
        ("Saturday, November 1, 2025 at 9:30 am", "2025-11-01T09:30:00+00:00"),
        ("November 1st, 2025, 9:30 pm", "2025-11-01T21:30:00+00:00"),
        ("Nov, 3 2025 at 8:12 am", "2025-11-03T08:12:00+00:00"),
        ("13/10/2025", "2025-10-13"),
        ("2025-11-01", "2025-11-01"),
        ("2025-11-01T09:30:00+00:00", "2025-11-01T09:30:00+00:00"),
        ("2025-11-01T09:30:00Z", "2025-11-01T09:30:00+00:00"),
        ("2025-11-01T09:30:00.123+05:30", "2025-11-01T09:30:00+05:30"),
        ("2025-11-01T09:30", "2025-11-01T09:30:00+00:00"),
        ("2025-07-01 09:30", "2025-07-01T09:30:00+01:00"),
        ("2025/07/01", "2025-07-01"),
        ("Sat, 01 Nov 2025 09:30:00 +0000", "2025-11-01T09:30:00+00:00"),
        ("Sat, 01 Nov 2025 09:30:00 GMT", "2025-11-01T09:30:00+00:00"),
        ("Fri, 31 Oct 2025 22:00:00 -0500", "2025-10-31T22:00:00-05:00"),
        ("1761989400", "2025-11-01T09:30:00+00:00"),
        (1761989400, "2025-11-01T09:30:00+00:00"),
        ("today", "2025-11-20"),
        ("yesterday", "2025-11-19"),
        ("3 days ago", "2025-11-17"),
        ("a week ago", "2025-11-13"),
        ("2 hours ago", "2025-11-20T10:00:00+00:00"),
        ("1 month ago", "2025-10-20"),
        ("1 novembre 2025", "2025-11-01"),
        ("1. November 2025", "2025-11-01"),
        ("3 de marzo de 2024", "2024-03-03"),
        ("14 juni 2023 10:45", "2023-06-14T10:45:00+01:00"),
        ("Nov 22 2025", "2025-11-22"),
    ],
)
def test_parse_date_forms(text: str | int, expected: str) -> None:
    assert parse_date(text, timezone="Europe/London", now=NOW) == expected


@pytest.mark.parametrize(
    ("text", "day_first", "expected"),
    [("01/11/2025", False, "2025-01-11"), ("01/11/2025", True, "2025-11-01"),
     ("1.11.2025", True, "2025-11-01"), ("13/10/2025", False, "2025-10-13"),
     ("10/13/2025", True, "2025-10-13"), ("05/03/25", True, "2025-03-05")],
)  # fmt: skip
def test_parse_date_numeric_order(text: str, day_first: bool, expected: str) -> None:
    assert parse_date(text, timezone="UTC", now=NOW, day_first=day_first) == expected


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("2025-03-30T01:30", "Europe/London", "2025-03-30T02:30:00+01:00"),  # clocks skip 01:xx
        ("2025-10-26T01:30", "Europe/London", "2025-10-26T01:30:00+01:00"),  # first 01:30
        ("2025-10-26T02:30", "Europe/London", "2025-10-26T02:30:00+00:00"),
        ("2025-03-09 02:30", "America/New_York", "2025-03-09T03:30:00-04:00"),
        ("July 4, 2025 6:00 pm", "America/New_York", "2025-07-04T18:00:00-04:00"),
        ("December 4, 2024 6:00 pm", "America/New_York", "2024-12-04T18:00:00-05:00"),
        ("2025-11-01T09:30:00+00:00", "Asia/Tokyo", "2025-11-01T09:30:00+00:00"),
    ],
)
def test_parse_date_localises_in_site_timezone_across_dst(
    text: str, zone: str, expected: str
) -> None:
    assert parse_date(text, timezone=zone, now=NOW) == expected


def test_relative_dates_use_the_site_day() -> None:
    late = datetime(2025, 11, 20, 23, 30, tzinfo=UTC)
    assert parse_date("today", timezone="Australia/Sydney", now=late) == "2025-11-21"
    assert parse_date("today", timezone="America/Los_Angeles", now=late) == "2025-11-20"


@pytest.mark.parametrize(
    "text",
    [None, "", "   ", "9", "2025", "12 Comments", "1,234", "020 7946 0958", "+44 20 7946 0958",
     "555-123-4567", "Comments are closed", "not a date", "5 min read", "Nov 30 2025",
     "2030-01-01", "1 January 1989", "1989-12-31T10:00:00Z", "31/02/2025", "2025-13-01",
     "32 May 2025", "Updated 12/01/2025", "99999999999", "novembre 2025", "v1.2.3",
     "x" * 500],
)  # fmt: skip
def test_parse_date_rejects_non_dates_future_and_ancient(text: str | None) -> None:
    assert parse_date(text, timezone="Europe/London", now=NOW) is None


def test_parse_date_accepts_naive_now_and_unknown_zone() -> None:
    assert parse_date("2025-11-01 10:00", timezone="Mars/Base", now=NOW.replace(tzinfo=None)) == (
        "2025-11-01T10:00:00+00:00"
    )


# --- counts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("9", 9), ("0", 0), ("1,234", 1234), ("1.234", 1234), ("1.2k", 1200), ("3K", 3000),
     ("1.5m", 1_500_000), ("12 Comments", 12), ("1 Comment", 1), ("One thought on “X”", 1),
     ("9 thoughts", 9), ("3 comments:", 3), ("Comments (12)", 12), ("(7)", 7),
     ("No comments", 0), ("No Comments yet", 0), ("Leave a comment", 0), ("Leave a Reply", 0),
     (" 4\u00a0responses ", 4), ("Comments are closed", None), ("Comments off", None),
     (None, None), ("", None), ("many", None), ("1.5", None), ("-3", None),
     ("Nov, 1 2025", None), ("9 min read", None), ("12 likes", None)],
)  # fmt: skip
def test_parse_count(text: str | None, expected: int | None) -> None:
    assert parse_count(text) == expected


# --- text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("", None),
        (" \u00a0\u200b\n ", None),
        ("Food &amp; drink", "Food & drink"),
        ("&amp;amp; twice", "& twice"),
        ("a\u00a0b", "a b"),
        ("zero\u200bwidth\ufeff\u2060\u200c\u200d", "zerowidth"),
        ("  many   spaces\tand\nlines  ", "many spaces and lines"),
        ("one\n\ntwo\n \n\n three", "one\n\ntwo\n\nthree"),
        ("line\r\n\r\nbreaks", "line\n\nbreaks"),
        ("Nai\u0308ve", "Na\u00efve"),
        (CURLY, CURLY),
        ("&lt;b&gt;not a tag&lt;/b&gt;", "<b>not a tag</b>"),
        ("e\u200b\u0301", "\u00e9"),
    ],
)
def test_clean_text(text: str | None, expected: str | None) -> None:
    assert clean_text(text) == expected


def test_word_count_and_content_hash() -> None:
    assert word_count(None) == 0
    assert word_count("Don\u2019t stop \u2014 it\u2019s well-known 3.5 mg") == 6
    fields: dict[str, Any] = {
        "title": "T", "published_at": None, "updated_at": None, "author": None,
        "comment_count": None, "summary": None, "text": "x", "topics": ("a",),
    }  # fmt: skip
    digest = content_hash(**fields)
    assert len(digest) == 64
    assert content_hash(**{**fields, "topics": ["a"]}) == digest
    assert content_hash(**{**fields, "text": "y"}) != digest


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_clean_text_never_raises_and_is_idempotent(text: str) -> None:
    once = clean_text(text)
    assert clean_text(once) == once
    if once is not None:
        assert once == once.strip()
        assert "\n\n\n" not in once
        assert unicodedata.is_normalized("NFC", once)


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(
            " \n\r\x85\u2028\u2029\u2000\u200b\ufeff\x1f\u0301e\u212b\u0344&#;a1\u037e"
        )
    )
)
def test_one_cleaning_pass_is_final_when_no_entity_is_left(text: str) -> None:
    """clean_text stops after one pass when no entity is left (a bare "&" may be): line
    breaks, odd spaces, zero widths and NFC-changing characters are all settled by that pass."""
    once = _clean_once(text)
    if _ENTITY.search(once) is None:
        assert _clean_once(once) == once
        assert clean_text(text) == (once or None)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab1_ \n.,-'\u2019\u00e9\u0301\u0663\u00b2\u2014!")))
def test_word_count_is_the_number_of_word_matches(text: str) -> None:
    """The shortcut for plain tokens counts what the word pattern would find in the text."""
    assert word_count(text) == len(_WORD.findall(text))


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from("&amp;#x3B;lt\u037e\u00a0\u200b \n\u0301e"), max_size=30))
def test_clean_text_idempotent_on_entity_soup(text: str) -> None:
    once = clean_text(text)
    assert clean_text(once) == once


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_parse_count_never_raises(text: str) -> None:
    result = parse_count(text)
    assert result is None or result >= 0


DATEISH = st.one_of(
    st.text(max_size=60),
    st.from_regex(r"\A[0-9]{1,4}[ /.,-]{1,2}[0-9A-Za-z]{1,9}[ /.,-]{1,2}[0-9]{2,4}\Z"),
    st.from_regex(r"\A(Nov|May|Dec)[ ,]{1,2}[0-9]{1,2} [0-9]{4}( [0-9]{1,2}:[0-9]{2}( [ap]m)?)?\Z"),
)


@settings(max_examples=200, deadline=None)
@given(DATEISH, st.sampled_from(["UTC", "Europe/London", "America/New_York"]), st.booleans())
def test_parse_date_never_raises_and_is_plausible(text: str, zone: str, day_first: bool) -> None:
    result = parse_date(text, timezone=zone, now=NOW, day_first=day_first)
    if result is None:
        return
    parsed = datetime.fromisoformat(result)
    if parsed.tzinfo is None:
        assert len(result) == 10
        assert "1990-01-01" <= result <= "2025-11-22"
    else:
        assert parsed <= NOW + timedelta(days=2)
        assert parsed >= datetime(1989, 12, 31, tzinfo=UTC)


@pytest.mark.parametrize(("day_first", "expected"), [(True, "2025-11-01"), (False, "2025-01-11")])
def test_site_day_first_orders_numeric_card_dates(day_first: bool, expected: str) -> None:
    page = ListingPage(
        url="https://x.example/tag/a/",
        name="A",
        description=None,
        cards=(Card(url="https://x.example/p/", title="P", date="01/11/2025"),),
    )
    site = SITE.model_copy(update={"day_first": day_first})
    record = normalize(page, Target(url=page.url, site="x"), fetched_at=NOW, site=site)
    assert isinstance(record, TopicPageRecord)
    assert record.cards[0].published_at == expected
