"""Store: card/page merge, idempotent upserts, changes, gone records, topic pages, resume."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import zlib
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pipeline.store as store_module
from pipeline.errors import StoreError
from pipeline.models import ArticleRecord, CardRecord, Target, TopicPageRecord, Validators
from pipeline.store import (
    ARTICLE_FIELDS,
    SCHEMA_VERSION,
    DirectoryLock,
    SitemapFile,
    Store,
    record_id,
    topic_hash,
)

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)
URL = "http://site.test/2025/11/valproic-acid/"
TOPIC = "http://site.test/topics/immunomodulation/"


def article(**changes) -> ArticleRecord:
    fields = {
        "site": "s",
        "url": URL,
        "title": "Valproic Acid and the Immune System",
        "published_at": "2025-11-01T09:30:00+00:00",
        "updated_at": None,
        "author": "Jane Doe",
        "comment_count": 9,
        "summary": "Meta description.",
        "text": "Para one.\n\nPara two.",
        "topics": ("Immunomodulation",),
        "language": "en",
        "word_count": 4,
        "content_hash": "x",
        "fetched_at": T0,
    }
    fields.update(changes)
    return ArticleRecord(**fields)


def card(**changes) -> CardRecord:
    fields = {
        "url": URL,
        "title": "Valproic Acid and the Immune System",
        "published_at": "2025-11-01",
        "comment_count": 8,
        "summary": "Card excerpt.",
    }
    fields.update(changes)
    return CardRecord(**fields)


def topic_page(page_no: int = 1, page_url: str = TOPIC, urls=(URL,)) -> TopicPageRecord:
    return TopicPageRecord(
        site="s",
        topic_url=TOPIC,
        page_url=page_url,
        page_no=page_no,
        name="Immunomodulation",
        description="About immunomodulation." if page_no == 1 else None,
        cards=tuple(card(url=u) for u in urls),
        fetched_at=T0,
    )


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path) as s:
        yield s


def save_listing(store: Store, page: TopicPageRecord, now=T0):
    with store.transaction():
        store.records.save_topic_page(page, [c.url for c in page.cards], now, 1)
        return [store.records.save_card("s", page.topic_url, c, now, 1) for c in page.cards]


def test_article_page_wins_over_card_except_summary(store):
    assert save_listing(store, topic_page()) == ["new"]
    with store.transaction():
        assert store.records.save_article(article(), T0, 1) == "changed"
    (rec,) = store.records.iter_articles()
    assert rec["id"] == record_id(URL)
    assert (
        rec["published_at"] == "2025-11-01T09:30:00+00:00"
    )  # page's timestamp beats the card's day
    assert rec["comment_count"] == 9  # page wins
    assert (
        rec["summary"] == "Card excerpt."
    )  # the site's own excerpt wins over the meta description
    assert rec["listed_in"] == ["Immunomodulation"]
    assert rec["topics"] == ["Immunomodulation"]


def test_card_only_article_gets_topics_from_its_listing(store):
    save_listing(store, topic_page())
    (rec,) = store.records.iter_articles()
    assert rec["fetched_at"] is None
    assert rec["topics"] == ["Immunomodulation"]
    assert rec["comment_count"] == 8


def test_same_data_twice_is_unchanged_and_only_moves_last_seen(store):
    with store.transaction():
        store.records.save_article(article(), T0, 1)
    seq = store.max_seq()
    later = T0 + timedelta(hours=6)
    with store.transaction():
        assert store.records.save_article(article(fetched_at=later), later, 2) == "unchanged"
    assert store.max_seq() == seq
    (rec,) = store.records.iter_articles()
    assert rec["last_seen_at"] == later.isoformat()
    assert rec["first_seen_at"] == T0.isoformat()


def test_a_change_gets_a_new_seq_and_hash(store):
    with store.transaction():
        store.records.save_article(article(), T0, 1)
    (before,) = store.records.iter_articles()
    with store.transaction():
        assert store.records.save_article(article(comment_count=10), T0, 2) == "changed"
    (after,) = store.records.iter_articles()
    assert after["seq"] > before["seq"]
    assert after["content_hash"] != before["content_hash"]
    assert list(store.records.iter_articles(since_seq=before["seq"])) == [after]


def test_a_new_listing_is_a_change_of_the_record_but_not_of_its_content(store):
    save_listing(store, topic_page())
    with store.transaction():
        store.records.save_article(article(), T0, 1)
    (before,) = store.records.iter_articles()
    other = "http://site.test/topics/pharmacology/"
    with store.transaction():
        page = replace(topic_page(), topic_url=other, page_url=other, name="Pharmacology")
        store.records.save_topic_page(page, [URL], T0, 1)
        assert store.records.save_card("s", other, card(), T0, 1) == "changed"
    (after,) = store.records.iter_articles()
    assert after["listed_in"] == ["Immunomodulation", "Pharmacology"]
    assert after["seq"] > before["seq"]  # the change feed carries it
    assert after["content_hash"] == before["content_hash"]  # the search index need not rewrite it
    assert list(store.records.iter_articles(since_seq=before["seq"], fetched_only=True)) == [after]


@pytest.mark.parametrize("older_row", [False, True], ids=["now", "text-in-page"])
def test_an_article_s_text_is_stored_once_and_kept_through_its_cards(store, older_row):
    with store.transaction():
        store.records.save_article(article(), T0, 1)
    conn = store._conn
    (page_json,) = conn.execute("SELECT page FROM articles").fetchone()
    assert "text" not in json.loads(page_json)  # the record holds it
    if older_row:  # as stores written before kept it: in the page fields too
        conn.execute("UPDATE articles SET page = ?", (json.dumps(article_page_fields()),))
    (before,) = store.records.iter_articles()
    assert before["text"] == "Para one.\n\nPara two."
    hashes = []
    for n, topic_url in enumerate(("http://site.test/topics/a/", "http://site.test/topics/b/")):
        with store.transaction():
            assert store.records.save_card("s", topic_url, card(comment_count=20 + n), T0, 1) == (
                "changed"
            )
        (after,) = store.records.iter_articles()
        assert after["text"] == before["text"]
        assert after["summary"] == "Card excerpt."  # the card's wins
        assert after["comment_count"] == 9  # the page's: the cards were not read after it
        hashes.append(after["content_hash"])
    assert hashes[0] == hashes[1] != before["content_hash"]  # the second card: listed_in only
    with store.transaction():  # the page again, without a text: the record loses it
        assert store.records.save_article(article(text=None), T0, 1) == "changed"
        assert store.records.save_card("s", TOPIC, card(), T0, 1) == "changed"
    (last,) = store.records.iter_articles()
    assert last["text"] is None


def article_page_fields() -> dict[str, object]:
    page = {f: getattr(article(), f) for f in ARTICLE_FIELDS}
    return {**page, "topics": list(article().topics), "sources": {}}


def test_fetched_only_leaves_out_articles_known_only_from_cards(store):
    save_listing(store, topic_page(urls=(URL, URL + "other/")))
    with store.transaction():
        store.records.save_article(article(), T0, 1)
    assert [r["url"] for r in store.records.iter_articles(fetched_only=True)] == [URL]
    assert len(list(store.records.iter_articles())) == 2


def test_gone_keeps_the_record_and_a_refetch_revives_it(store):
    with store.transaction():
        store.records.save_article(article(), T0, 1)
        assert store.records.mark_gone(URL, T0, 1) == "gone"
        assert store.records.mark_gone(URL, T0, 1) is None  # already gone: no new change
    (rec,) = store.records.iter_articles()
    assert rec["status"] == "gone"
    assert rec["title"]
    with store.transaction():
        assert store.records.save_article(article(), T0, 2) == "changed"
    assert next(store.records.iter_articles())["status"] == "active"
    assert store.changes_between(0, store.max_seq()) == {"article_new": 1}  # one record, new here
    first = store.max_seq() - 2
    assert store.changes_between(first, store.max_seq()) == {"article_changed": 1}
    assert store.changes_between(first, first + 1) == {"article_gone": 1}


def test_topic_article_urls_follow_page_order_across_pages(store):
    second = "http://site.test/2025/10/older/"
    save_listing(store, topic_page(2, TOPIC + "page/2/", urls=(second, URL)))
    save_listing(store, topic_page(1, TOPIC, urls=(URL,)))
    (topic,) = store.records.iter_topics()
    assert topic["article_urls"] == [URL, second]
    assert topic["article_count"] == 2
    assert (
        topic["description"] == "About immunomodulation."
    )  # page 2 (no description) does not erase it


def test_queue_dedupes_within_a_cycle_and_requeues_in_the_next(store):
    q = store.queue
    with store.transaction():
        cycle = q.begin_cycle("s", T0)
        assert q.enqueue([(Target(url=URL, site="s"), "site.test")] * 2, cycle) == 1
        (claimed,) = q.claim(["s"], (), 5)
        q.complete(claimed.url, "done")
        assert q.enqueue([(Target(url=URL, site="s"), "site.test")], cycle) == 0
        q.end_cycle("s", cycle, T0)
        nxt = q.begin_cycle("s", T0)
        assert nxt == cycle + 1
        assert q.enqueue([(Target(url=URL, site="s"), "site.test")], nxt) == 1


def test_known_links_replay_what_was_followed_less_what_the_caller_skips(store):
    q = store.queue
    links = [
        Target(
            url="http://site.test/topic/a/page/2/", site="s", depth=2, topic_url=TOPIC, page_no=2
        ),
        Target(url="http://site.test/post-1/", site="s", depth=2),
        Target(url="http://site.test/post-2/", site="s", depth=2),
    ]
    with store.transaction():
        cycle = q.begin_cycle("s", T0)
        q.enqueue([(Target(url=URL, site="s"), "site.test")], cycle)
        q.complete(URL, "done", fetched_at=T0, kind="article", links=links)
    assert q.known_links(URL) == links
    asked = []
    dealt_with = [{links[1].url}, {"http://site.test/elsewhere/"}]

    def skip(site: str) -> list[set[str]]:
        asked.append(site)
        return dealt_with

    assert q.known_links(URL, skip=skip) == [links[0], links[2]]
    assert asked == ["s"]  # once a page, not once a link
    dealt_with[1].add(links[0].url)  # a pagination link (stored with its topic) left out too
    assert q.known_links(URL, skip=skip) == [links[2]]
    assert q.known_links("http://site.test/never-fetched/", skip=skip) == []


def test_known_links_of_mixed_sites_and_of_older_stores_read_back(store):
    q = store.queue
    mixed = [
        Target(url="http://site.test/post-1/", site="s", depth=2),
        Target(url="http://other.test/", site="o", depth=1),
        Target(
            url="http://site.test/topic/a/page/3/", site="s", depth=2, topic_url=TOPIC, page_no=3
        ),
    ]
    older = "http://site.test/older/"
    # the rows and zlib level earlier releases wrote
    blob = zlib.compress(
        json.dumps(
            [[t.url, t.site, t.depth, t.topic_url, t.page_no] for t in mixed[::-1]]
        ).encode(),
        6,
    )
    with store.transaction():
        cycle = q.begin_cycle("s", T0)
        q.enqueue([(Target(url=URL, site="s"), "site.test")], cycle)
        q.enqueue([(Target(url=older, site="s"), "site.test")], cycle)
        q.complete(URL, "done", fetched_at=T0, kind="article", links=mixed)
        q.complete(older, "done", fetched_at=T0, kind="article", links=[])
        store._conn.execute("UPDATE page_links SET links = ? WHERE url = ?", (blob, older))
    assert q.known_links(URL) == mixed
    assert q.known_links(older) == mixed[::-1]
    assert q.known_links_of([URL, older]) == {t.url: t for t in mixed}
    # an older store's rows are left out per their own site
    assert q.known_links(older, skip=lambda site: [{mixed[1].url}] if site == "o" else []) == [
        mixed[2],
        mixed[0],
    ]
    assert q.known_links_of([URL, older], skip=lambda site: [{mixed[0].url}]) == {
        t.url: t for t in mixed[1:]
    }


def test_known_links_come_a_page_at_a_time_and_skip_is_asked_again_for_each(store):
    q = store.queue
    pages = {f"http://site.test/author/{i}/": i for i in range(3)}
    links = {
        url: [Target(url=f"http://site.test/p/{i + j}/", site="s", depth=2) for j in range(3)]
        for url, i in pages.items()
    }
    with store.transaction():
        cycle = q.begin_cycle("s", T0)
        q.enqueue([(Target(url=url, site="s"), "site.test") for url in pages], cycle)
        for url in pages:
            q.complete(url, "done", fetched_at=T0, kind="other", links=links[url])
    handled: set[str] = set()
    given: list[str] = []
    per_page = 0
    for page_links in q.known_links_each(list(pages), skip=lambda site: [set(handled)]):
        per_page += 1
        given += [t.url for t in page_links]
        handled.update(t.url for t in page_links)  # as a crawl queues them
    # a list per page; pages overlap, and what one page gave is left out of the next's
    assert per_page == 3
    assert sorted(given) == [f"http://site.test/p/{n}/" for n in range(5)]
    assert list(q.known_links_each(["http://site.test/never/"])) == []


def test_a_claimed_page_s_validators_are_the_stored_ones_and_then_the_new_ones(store):
    from pipeline.models import Validators

    q = store.queue
    with store.transaction():
        cycle = q.begin_cycle("s", T0)
        q.enqueue([(Target(url=URL, site="s"), "site.test")], cycle)
        q.complete(URL, "done", fetched_at=T0, validators=Validators('"v1"', "Mon, 01 Jan 2024"))
        q.enqueue([(Target(url=URL, site="s"), "site.test")], q.begin_cycle("s", T0))
    assert q.validators(URL) == Validators('"v1"', "Mon, 01 Jan 2024")  # not claimed: read
    with store.transaction():
        assert [t.url for t in q.claim(["s"], (), 1)] == [URL]
    assert q.validators(URL) == Validators('"v1"', "Mon, 01 Jan 2024")  # read with the claim
    with store.transaction():
        q.complete(URL, "done", fetched_at=T0, validators=Validators('"v2"', None))
        q.enqueue([(Target(url=URL, site="s"), "site.test")], q.begin_cycle("s", T0))
        q.claim(["s"], (), 1)
        # fetched (a 304, say) before anyone asked for its validators: none kept stale
        q.complete(URL, "done", fetched_at=T0, validators=Validators('"v3"', None))
    assert q.validators(URL) == Validators('"v3"', None)


def test_claimed_pages_states_are_read_with_the_claim_and_the_new_ones_once_completed(store):
    from pipeline.models import PageState

    q = store.queue
    urls = [f"http://site.test/p/{i}/" for i in range(3)]
    with store.transaction():
        enqueue(store, q.begin_cycle("s", T0), *urls)
        for url in urls:
            q.complete(url, "done", fetched_at=T0, http_status=200, kind="article")
        enqueue(store, q.begin_cycle("s", T0), *urls)
        assert len(q.claim(["s"], (), 3)) == 3
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    try:
        assert q.page_states(urls) == dict.fromkeys(urls, PageState(T0, "article"))
    finally:
        store._conn.set_trace_callback(None)
    assert statements == []  # as claimed: no query
    later = T0 + timedelta(days=31)
    with store.transaction():
        q.complete_not_modified([(urls[0], later)])
        q.complete(urls[1], "done", fetched_at=later, http_status=200, kind="listing")
    states = q.page_states([*urls, "http://site.test/never/"])
    assert states == {
        urls[0]: PageState(later, "article"),
        urls[1]: PageState(later, "listing"),
        urls[2]: PageState(T0, "article"),  # still claimed
    }


def test_pages_completed_as_not_modified_in_one_call_are_as_completed_one_by_one(store):
    from pipeline.models import Validators

    q = store.queue
    urls = [f"http://site.test/p/{i}/" for i in range(4)]
    links = [Target(url="http://site.test/other/", site="s", depth=1)]
    with store.transaction():
        cycle = q.begin_cycle("s", T0)
        q.enqueue([(Target(url=u, site="s"), "site.test") for u in urls], cycle)
        for url in urls:  # a first fetch: kind, validators and links stored
            q.complete(
                url,
                "done",
                fetched_at=T0,
                http_status=200,
                kind="article",
                validators=Validators(f'"{url}"', None),
                links=links,
            )
        q.complete(urls[3], "failed", reason="timeout")
        q.enqueue([(Target(url=u, site="s"), "site.test") for u in urls], q.begin_cycle("s", T0))
        assert len(q.claim(["s"], (), 4)) == 4
    later = T0 + timedelta(days=31)
    with store.transaction():
        for url in urls[:2]:
            q.complete(url, "done", fetched_at=later, http_status=304)
        q.complete_not_modified((u, later) for u in urls[2:])
    rows = {
        r["url"]: {k: r[k] for k in r.keys() if k not in ("url", "seq", "etag")}  # noqa: SIM118
        for r in store._conn.execute("SELECT * FROM pages")
    }
    assert rows[urls[2]] == rows[urls[0]]
    assert rows[urls[3]] == rows[urls[1]]  # the earlier failure's reason cleared too
    assert (rows[urls[3]]["state"], rows[urls[3]]["http_status"]) == ("done", 304)
    assert rows[urls[3]]["fetched_at"] == later.isoformat()
    assert q.validators(urls[3]) == Validators(f'"{urls[3]}"', None)  # kept, not claimed
    assert q.known_links(urls[3]) == links


def test_links_are_packed_as_text_and_read_back_exactly_whatever_they_hold():
    from pipeline.store.queue import _pack_links, _unpack_links

    plain = [
        Target(url="http://site.test/post-1/", site="s", depth=2),
        Target(
            url="http://site.test/topic/a/page/3/", site="s", depth=2, topic_url=TOPIC, page_no=3
        ),
        Target(url="http://site.test/odd/", site="s", depth=2, topic_url=None, page_no=4),
    ]
    assert zlib.decompress(_pack_links(plain)).startswith(b"L2\ts\t2\t3\n")
    assert list(_unpack_links(_pack_links(plain))) == plain
    # the one-line-a-link shape development builds of schema 4 wrote
    l1 = f"L1\ts\t2\n{plain[0].url}\n{plain[1].url}\t{TOPIC}\t3\n{plain[2].url}\t\t4"
    assert _unpack_links(zlib.compress(l1.encode())) == plain
    assert _unpack_links(zlib.compress(l1.encode()), lambda site: [{plain[1].url}]) == [
        plain[0],
        plain[2],
    ]
    # a tab or a line break in a value cannot be a text line: such links are stored as JSON
    for odd in ("http://site.test/a\tb/", "http://site.test/a\nb/"):
        links = [*plain, Target(url=odd, site="s", depth=2)]
        assert zlib.decompress(_pack_links(links)).startswith(b"[")
        assert list(_unpack_links(_pack_links(links))) == links
    assert list(_unpack_links(_pack_links([]))) == []
    left_out = [{plain[0].url}, {plain[2].url}]
    assert _unpack_links(_pack_links(plain), lambda site: left_out) == [plain[1]]
    assert _unpack_links(_pack_links(links), lambda site: left_out) == [plain[1], links[-1]]


def _topic_page_links(page: int, pages: int = 40) -> list[Target]:
    """A topic page's links as ``Frontier.links_from`` orders them: the next and previous
    pages, page 1 (the topic's own URL, numbered from its position), every other page number,
    then its cards and the theme's links."""

    def numbered(n: int) -> Target:
        return Target(url=f"{TOPIC}page/{n}/", site="s", depth=2, topic_url=TOPIC, page_no=n)

    return [
        numbered(page + 1),
        numbered(page - 1),
        Target(url=TOPIC, site="s", depth=2, topic_url=TOPIC, page_no=1002),
        *(numbered(n) for n in range(2, page - 1)),
        *(numbered(n) for n in range(page + 2, pages + 1)),
        *(Target(url=f"http://site.test/2025/11/post-{n}/", site="s", depth=2) for n in range(5)),
        Target(url="http://site.test/", site="s", depth=2),
    ]


def test_a_topic_pages_numbers_are_stored_as_runs_and_read_back_exactly():
    from pipeline.store.queue import _pack_links, _unpack_links

    links = _topic_page_links(10)
    text = zlib.decompress(_pack_links(links)).decode()
    head, *lines = text.split("\n")
    # five targets on lines of their own, the rest in two runs: 2-8 and 12-40
    assert head == "L3\ts\t2\t9\t2"
    assert lines[9:11] == [
        f"3\t{TOPIC}\t{TOPIC}page/\t/\t2\t8",
        f"3\t{TOPIC}\t{TOPIC}page/\t/\t12\t40",
    ]
    assert _unpack_links(_pack_links(links)) == links
    left_out = {f"{TOPIC}page/{n}/" for n in (3, 11, 12, 40)} | {"http://site.test/"}
    assert _unpack_links(_pack_links(links), lambda site: [left_out]) == [
        t for t in links if t.url not in left_out
    ]
    # two in a row are no run; nor are numbers a URL does not hold, or not one after another
    short = [t for t in links if t.page_no not in range(4, 41)]
    assert zlib.decompress(_pack_links(short)).startswith(b"L2\t")
    assert _unpack_links(_pack_links(short)) == short
    odd = [replace(t, url=t.url.replace("/page/", "/p/x")) if t.page_no == 5 else t for t in links]
    assert _unpack_links(_pack_links(odd)) == odd
    assert _unpack_links(_pack_links(links[::-1])) == links[::-1]


def test_a_run_found_all_left_out_is_not_built_again_until_forgotten():
    from pipeline.models import SettledRuns
    from pipeline.store.queue import _pack_links, _unpack_links

    settled = SettledRuns()
    page_10, page_20 = _pack_links(_topic_page_links(10)), _pack_links(_topic_page_links(20))
    dealt_with = {t.url for t in _topic_page_links(10)} - {f"{TOPIC}page/40/"}
    skip = lambda site: [dealt_with]  # noqa: E731
    # 2-8 all dealt with, so settled; 12-40 not (40 is left)
    assert _unpack_links(page_10, skip, settled) == [_topic_page_links(10)[-7]]
    assert settled.covers(("s", f"{TOPIC}page/", "/"), 2, 8)
    assert not settled.covers(("s", f"{TOPIC}page/", "/"), 12, 40)
    dealt_with |= {f"{TOPIC}page/40/", f"{TOPIC}page/10/"}
    assert _unpack_links(page_20, skip, settled) == []
    # page 20's runs, 2-18 and 22-40, merged with 2-8; 19-21 were on lines of their own
    assert settled.covers(("s", f"{TOPIC}page/", "/"), 2, 18)
    assert settled.covers(("s", f"{TOPIC}page/", "/"), 22, 40)
    assert not settled.covers(("s", f"{TOPIC}page/", "/"), 12, 40)
    # while settled, a run is not even looked at: the skip no longer leaves these out
    dealt_with.clear()
    assert [t.page_no for t in _unpack_links(page_20, skip, settled) if t.topic_url] == [
        21,
        19,
        1002,
    ]
    settled.clear()
    assert len(_unpack_links(page_10, skip, settled)) == len(_topic_page_links(10))
    # no skip: nothing is left out, and nothing is settled
    assert _unpack_links(page_10, None, settled) == _topic_page_links(10)
    assert not settled.covers(("s", f"{TOPIC}page/", "/"), 2, 2)


_PAGINATION = st.builds(
    lambda n, off, path: Target(
        url=f"http://site.test/{path}/{n}/", site="s", depth=2, topic_url=TOPIC, page_no=n + off
    ),
    st.integers(1, 30),
    st.sampled_from([0, 0, 0, 1]),
    st.sampled_from(["page", "page", "other"]),
)


@given(
    runs=st.lists(st.tuples(st.integers(1, 30), st.integers(0, 8))),
    others=st.lists(_PAGINATION),
    left_out=st.sets(st.integers(1, 40)),
)
def test_unpacking_runs_gives_back_every_target_in_order_less_what_skip_names(
    runs: list[tuple[int, int]], others: list[Target], left_out: set[int]
):
    from pipeline.models import SettledRuns
    from pipeline.store.queue import _pack_links, _unpack_links

    links: dict[str, Target] = {}
    for start, length in runs:
        for n in range(start, start + length):
            url = f"http://site.test/page/{n}/"
            links.setdefault(url, Target(url, "s", 2, TOPIC, n))
        for target in others[:2]:
            links.setdefault(target.url, target)
        others = others[2:]
    targets = list(links.values())
    skipped = {f"http://site.test/page/{n}/" for n in left_out}
    assert _unpack_links(_pack_links(targets)) == targets
    settled = SettledRuns()
    want = [t for t in targets if t.url not in skipped]
    for _ in range(2):  # and again with what the first found settled
        assert _unpack_links(_pack_links(targets), lambda site: [skipped], settled) == want


_LINK = st.builds(
    Target,
    url=st.integers(0, 30).map(lambda n: f"http://site.test/p/{n}/"),
    site=st.just("s"),
    depth=st.just(2),
    topic_url=st.none() | st.just(TOPIC),
    page_no=st.integers(1, 3),
)


@given(
    links=st.lists(_LINK, unique_by=lambda t: t.url, max_size=12),
    left_out=st.lists(st.sets(st.integers(0, 30).map(lambda n: f"http://site.test/p/{n}/"))),
)
def test_unpacking_links_leaves_out_exactly_what_skip_names(
    links: list[Target], left_out: list[set[str]]
):
    from pipeline.store.queue import _pack_links, _unpack_links

    skipped = set().union(*left_out)
    assert _unpack_links(_pack_links(links), lambda site: left_out) == [
        t for t in links if t.url not in skipped
    ]
    assert _unpack_links(_pack_links(links)) == links


def test_a_topic_changes_when_any_of_its_pages_lists_other_articles(store):
    second = "http://site.test/2025/10/older/"
    third = "http://site.test/2025/09/oldest/"

    def save(page: TopicPageRecord) -> str:
        with store.transaction():
            return store.records.save_topic_page(page, [c.url for c in page.cards], T0, 1)

    assert save(topic_page(1, TOPIC, urls=(URL,))) == "new"
    assert save(topic_page(2, TOPIC + "page/2/", urls=(second,))) == "changed"
    assert save(topic_page(1, TOPIC, urls=(URL,))) == "unchanged"
    assert save(topic_page(2, TOPIC + "page/2/", urls=(second,))) == "unchanged"
    assert save(topic_page(2, TOPIC + "page/2/", urls=(second, third))) == "changed"
    assert save(topic_page(1, TOPIC, urls=(URL,))) == "unchanged"  # page 2's list is in its hash
    renamed = replace(topic_page(1, TOPIC, urls=(URL,)), description="New description.")
    assert save(renamed) == "changed"
    (topic,) = store.records.iter_topics()
    assert topic["article_urls"] == [URL, second, third]


def test_claim_skips_busy_hosts_and_in_flight_rows_are_released(store):
    q = store.queue
    with store.transaction():
        cycle = q.begin_cycle("s", T0)
        q.enqueue(
            [
                (Target(url="http://a.test/", site="s"), "a.test"),
                (Target(url="http://b.test/", site="s"), "b.test"),
            ],
            cycle,
        )
    (only_b,) = q.claim(["s"], {"a.test"}, 5)
    assert only_b.url == "http://b.test/"
    assert q.count(["s"], "in_flight") == 1
    assert q.release_in_flight(["s"]) == 1
    assert q.count(["s"]) == 2


def test_directory_lock_refuses_a_second_holder(tmp_path):
    with DirectoryLock(tmp_path, "crawl"), pytest.raises(StoreError, match="already crawling"):
        DirectoryLock(tmp_path, "crawl").acquire()
    with DirectoryLock(tmp_path, "crawl"):  # released: can be taken again
        pass


def test_not_a_database_is_a_clear_store_error(tmp_path):
    (tmp_path / "crawldex.sqlite3").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="crawldex database"):
        Store(tmp_path)


def test_changes_between_counts_each_record_once_by_its_changes_in_the_range(store):
    """Against a direct reading of the rule, on an interleaved history of many records."""
    import random

    rng = random.Random(7)
    kinds = [rng.choice(["article", "topic"]) for _ in range(600)]
    history = [(f"{kind}{rng.randrange(30)}", kind, rng.choice(CHANGE_KINDS)) for kind in kinds]
    with store.transaction():
        store._conn.executemany(
            "INSERT INTO changes (record_id, kind, change, at) VALUES (?, ?, ?, 'x')", history
        )
    seqs = [row[0] for row in store._conn.execute("SELECT seq FROM changes ORDER BY seq")]
    for after, upto in [(0, seqs[-1]), (seqs[99], seqs[450]), (seqs[300], seqs[301])]:
        in_range = [h for s, h in zip(seqs, history, strict=True) if after < s <= upto]
        expected: dict[str, int] = {}
        for key in dict.fromkeys((rid, kind) for rid, kind, _ in in_range):
            changes = [c for rid, kind, c in in_range if (rid, kind) == key]
            change = "new" if "new" in changes else changes[-1]
            expected[f"{key[1]}_{change}"] = expected.get(f"{key[1]}_{change}", 0) + 1
        assert store.changes_between(after, upto) == expected


CHANGE_KINDS = ("new", "changed", "gone")


def test_unchanged_pages_and_listings_move_last_seen_of_stored_articles_only(store):
    other = "http://site.test/2025/11/other/"
    with store.transaction():
        store.records.save_article(article(), T0, 1)
        store.records.save_article(article(url=other), T0, 1)
    later, gone_at = T0 + timedelta(days=1), T0 + timedelta(days=2)
    with store.transaction():
        store.records.touch_articles([(URL, later), ("http://site.test/never-stored/", later)])
        store.records.mark_gone(other, gone_at, 2)
        store.recrawl.touch_articles([URL, other], gone_at + timedelta(days=1))  # other is gone
    seen = {r["url"]: r["last_seen_at"] for r in store.records.iter_articles()}
    assert seen == {URL: (gone_at + timedelta(days=1)).isoformat(), other: gone_at.isoformat()}
    count = store._conn.execute("SELECT COUNT(*) FROM article_seen").fetchone()[0]
    assert count == 2  # no row for a URL never stored


def test_a_schema_4_store_moves_links_and_last_seen_out_of_wide_rows(tmp_path):
    links = [
        Target(url="http://site.test/post-2/", site="s", depth=2),
        Target(
            url="http://site.test/topic/a/page/2/", site="s", depth=2, topic_url=TOPIC, page_no=2
        ),
    ]
    with Store(tmp_path) as store:
        q = store.queue
        with store.transaction():
            cycle = q.begin_cycle("s", T0)
            q.enqueue([(Target(url=URL, site="s"), "site.test")], cycle)
            q.complete(URL, "done", fetched_at=T0, http_status=200, kind="article", links=links)
            store.records.save_article(article(), T0, 1)
            store.records.touch_articles([(URL, T0 + timedelta(days=3))])
        (before,) = store.records.iter_articles()
        # the shape schema 4 had: pages.links and articles.last_seen_at, and neither table
        conn = store._conn
        conn.execute("ALTER TABLE pages ADD COLUMN links BLOB")
        conn.execute(
            "UPDATE pages SET links = (SELECT links FROM page_links WHERE url = pages.url)"
        )
        conn.execute("DROP TABLE page_links")
        conn.execute("ALTER TABLE articles ADD COLUMN last_seen_at TEXT NOT NULL DEFAULT ''")
        conn.execute(
            "UPDATE articles SET last_seen_at = "
            "(SELECT last_seen_at FROM article_seen WHERE url = articles.url)"
        )
        conn.execute("DROP TABLE article_seen")
        conn.execute("PRAGMA user_version=4")
    with Store(tmp_path) as store:
        conn = store._conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert "links" not in {row[1] for row in conn.execute("PRAGMA table_info(pages)")}
        assert "last_seen_at" not in {row[1] for row in conn.execute("PRAGMA table_info(articles)")}
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert {"pages_queued", "articles_seq"} <= tables  # the rebuilt tables' indexes
        assert "pages_queue" not in tables  # schema 7's, replaced
        assert not {"pages_new", "articles_new"} & tables
        assert store.queue.known_links(URL) == links
        assert store.queue.page_states([URL])[URL].kind == "article"
        assert list(store.records.iter_articles()) == [before]
        assert before["last_seen_at"] == (T0 + timedelta(days=3)).isoformat()
    with Store(tmp_path) as store:  # opened again: nothing left to move
        assert store.queue.known_links(URL) == links
        assert list(store.records.iter_articles()) == [before]


def _topic_sums_from_scratch(store: Store) -> dict[str, tuple[str, str]]:
    """Each topic's (pages_sum, content_hash) worked out from all its stored pages at once."""
    conn = store._conn
    out = {}
    for url, name, description in conn.execute("SELECT url, name, description FROM topics"):
        total = topic_hash.EMPTY_SUM
        for page_url, page_no, urls in conn.execute(
            "SELECT page_url, page_no, article_urls FROM topic_pages WHERE topic_url = ?", (url,)
        ):
            total = topic_hash.add_page(total, topic_hash.page_digest(page_url, page_no, urls))
        out[url] = (total, topic_hash.topic_hash(name, description, total))
    return out


_TOPICS = (TOPIC, "http://site.test/topics/other/")
_PAGE_OPS = st.lists(
    st.tuples(
        st.sampled_from(["save", "gone"]),
        st.sampled_from(_TOPICS),
        st.integers(1, 4),  # page number, and which page URL
        st.lists(st.sampled_from([URL, "http://site.test/a/", "http://site.test/b/"]), max_size=3),
    ),
    max_size=25,
)


@given(ops=_PAGE_OPS)
def test_a_topic_s_sum_is_kept_a_page_at_a_time_as_its_pages_change(tmp_path_factory, ops):
    with Store(tmp_path_factory.mktemp("sums")) as store:
        kept: dict[str, str] = {}  # topic -> content hash after its last stored page
        for op, topic_url, number, urls in ops:
            # page URLs are shared by both topics: a page may move from one topic to the other
            page_url = f"http://site.test/list/page/{number}/"
            with store.transaction():
                if op == "gone":
                    store.records.mark_gone(page_url, T0, 1)
                    continue
                page = replace(topic_page(number, page_url, urls=tuple(urls)), topic_url=topic_url)
                before = _topic_sums_from_scratch(store).get(topic_url)
                change = store.records.save_topic_page(page, urls, T0, 1)
            after = _topic_sums_from_scratch(store)[topic_url]
            stored = store._conn.execute(
                "SELECT pages_sum, content_hash FROM topics WHERE url = ?", (topic_url,)
            ).fetchone()
            assert tuple(stored) == after  # the same as hashing every page again
            if before is None:
                assert change == "new"
            else:  # unchanged exactly when nothing the hash covers changed since it was taken
                assert (change == "unchanged") == (after[1] == kept[topic_url])
            kept[topic_url] = after[1]
        for topic_url, (total, _hash) in _topic_sums_from_scratch(store).items():
            assert store.records._pages_sum(topic_url) == total  # gone pages left too


def test_a_schema_6_store_gets_its_topic_sums_without_a_change(tmp_path):
    second = "http://site.test/2025/10/older/"
    with Store(tmp_path) as store:
        save_listing(store, topic_page(1, TOPIC, urls=(URL,)))
        save_listing(store, topic_page(2, TOPIC + "page/2/", urls=(second,)))
        want = _topic_sums_from_scratch(store)
        changes = store.max_seq()
        # the shape schema 6 had: no pages_sum, and another hash
        conn = store._conn
        conn.execute("ALTER TABLE topics DROP COLUMN pages_sum")
        conn.execute("UPDATE topics SET content_hash = ?", ("0" * 64,))
        conn.execute("PRAGMA user_version=6")
    with Store(tmp_path) as store:
        conn = store._conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert _topic_sums_from_scratch(store) == want
        stored = conn.execute("SELECT url, pages_sum, content_hash FROM topics").fetchall()
        assert {url: (total, hashed) for url, total, hashed in stored} == want
        assert store.max_seq() == changes  # summed again, not changed
        with store.transaction():
            page = topic_page(2, TOPIC + "page/2/", urls=(second,))
            assert store.records.save_topic_page(page, [second], T0, 1) == "unchanged"


def queued_elsewhere(store: Store) -> set[str]:
    """The queue's URLs as another connection sees them: what has been committed."""
    with closing(sqlite3.connect(store.path)) as other:
        return {url for (url,) in other.execute("SELECT url FROM pages")}


def enqueue(store: Store, cycle: int, *urls: str) -> None:
    store.queue.enqueue([(Target(url=u, site="s"), "site.test") for u in urls], cycle)


def test_grouped_writes_are_committed_together_and_a_failed_block_alone_is_undone(store):
    with store.transaction():
        cycle = store.queue.begin_cycle("s", T0)
    with store.grouped():
        enqueue(store, cycle, "http://site.test/a")

    def fails_half_way() -> None:
        with store.grouped():
            enqueue(store, cycle, "http://site.test/broken")
            raise RuntimeError("a page failed half-way")

    with pytest.raises(RuntimeError):
        fails_half_way()
    with store.transaction():  # a plain transaction inside the group: a block of it
        enqueue(store, cycle, "http://site.test/b")
    assert queued_elsewhere(store) == set(), "nothing is committed before the group is"
    assert not store.group_due(blocks=2, seconds=60)
    with store.grouped():
        enqueue(store, cycle, "http://site.test/c")
    assert store.group_due(blocks=2, seconds=60)  # a and c: a failed block does not count
    store.commit_group()
    assert queued_elsewhere(store) == {f"http://site.test/{n}" for n in "abc"}
    assert not store.group_due(blocks=0, seconds=0), "no group is open after the commit"


def test_a_process_killed_with_a_group_open_loses_that_group_only(tmp_path):
    """``os._exit``: no cleanup runs, as under kill -9."""
    script = f"""
import os
from datetime import UTC, datetime
from pathlib import Path
import pipeline.store
from pipeline.models import Target
from pipeline.store import Store
pipeline.store.GROUP_GAP = 0  # a group begins at once after a commit
store = Store(Path({str(tmp_path)!r}))
with store.transaction():
    cycle = store.queue.begin_cycle("s", datetime.now(UTC))
def enqueue(url):
    store.queue.enqueue([(Target(url=url, site="s"), "site.test")], cycle)
with store.grouped():
    enqueue("http://site.test/committed")
store.commit_group()
with store.grouped():
    enqueue("http://site.test/lost")
os._exit(0)
"""
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, timeout=60)
    with Store(tmp_path) as store:
        assert queued_elsewhere(store) == {"http://site.test/committed"}
        assert store.queue.count(["s"]) == 1


def test_for_a_moment_after_a_group_s_commit_blocks_commit_one_by_one(store, monkeypatch):
    """So another writer finds the write lock free between them (``GROUP_GAP``)."""
    now = [1000.0]
    monkeypatch.setattr(store_module, "monotonic", lambda: now[0])
    with store.transaction():
        cycle = store.queue.begin_cycle("s", T0)
    with store.grouped():
        enqueue(store, cycle, "http://site.test/a")
    store.commit_group()
    now[0] += store_module.GROUP_GAP / 2
    with store.grouped():
        enqueue(store, cycle, "http://site.test/b")
    assert queued_elsewhere(store) == {"http://site.test/a", "http://site.test/b"}
    assert not store.group_due(blocks=0, seconds=0), "no group was begun"
    now[0] += store_module.GROUP_GAP
    with store.grouped():
        enqueue(store, cycle, "http://site.test/c")
    assert "http://site.test/c" not in queued_elsewhere(store), "a group began again"
    store.commit_group()
    assert "http://site.test/c" in queued_elsewhere(store)


def test_a_sitemap_reading_is_kept_whole_and_only_under_the_rules_it_was_judged_by(store):
    """Files come back in the order read, URLs newest first a slice at a time with their
    lastmods exact; other rules, or a site whose reading was forgotten, get nothing."""
    files = [
        SitemapFile("http://s.test/index.xml", None, Validators(etag='"i"')),
        SitemapFile("http://s.test/1.xml", "http://s.test/index.xml", Validators(None, "Mon")),
    ]
    lastmod = datetime(2020, 1, 3, 4, 5, 6, 789, tzinfo=UTC)
    urls = [(f"http://s.test/p/{i}", lastmod if i % 2 else None) for i in range(5)]
    with store.transaction():
        store.sitemaps.forget("s")
        store.sitemaps.add_urls("s", urls[:3])
        store.sitemaps.add_urls("s", urls[3:])  # appended after the first slice
        store.sitemaps.save_files("s", "rules-1", files, T0)
        store.sitemaps.add_urls("other", urls[:1])
    assert store.sitemaps.files("s", "rules-1") == files
    assert store.sitemaps.files("s", "rules-2") == []
    assert list(store.sitemaps.urls("s", 2)) == [urls[0:2], urls[2:4], urls[4:5]]
    with store.transaction():
        store.sitemaps.forget("s")
    assert store.sitemaps.files("s", "rules-1") == []
    assert list(store.sitemaps.urls("s", 2)) == []
    assert list(store.sitemaps.urls("other", 2)) == [urls[:1]]


def test_pages_are_counted_by_state_and_only_queued_ones_stay_in_the_queue_index(store):
    with store.transaction():
        cycle = store.queue.begin_cycle("s", T0)
        enqueue(store, cycle, *(f"http://site.test/{n}" for n in "abcd"))
        claimed = store.queue.claim(["s"], [], 2)
        store.queue.complete(claimed[0].url, "done", fetched_at=T0, http_status=200)
    counts = {state: store.queue.count(["s"], state) for state in ("queued", "in_flight", "done")}
    assert counts == {"queued": 2, "in_flight": 1, "done": 1}
    indexed = store._conn.execute(
        "SELECT COUNT(*) FROM pages INDEXED BY pages_queued WHERE state = 'queued'"
    )
    assert indexed.fetchone()[0] == 2
    with pytest.raises(ValueError, match="no page state 'busy'"):
        store.queue.count(["s"], "busy")
