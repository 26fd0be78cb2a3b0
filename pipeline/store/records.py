"""Article and topic records: idempotent upserts, card/page merge, change tracking.

An article is known from two sources: the cards of the topic pages that list it and its own page.
Both are kept (``card`` and ``page`` columns; ``page`` without the text, which the record holds as
the page said it) and merged into the record on every write: the article
page wins where both have a value, except ``summary``, where the card's excerpt (the site's own
summary) wins over the page's meta description, and ``comment_count``, where the newer observation
wins (a card read after the page's last fetch; the card keeps its ``observed_at``). A write that
changes nothing in the merged record only moves ``last_seen_at``; a real change gets a row in
``changes`` and a new ``seq``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pipeline.models import ArticleRecord, CardRecord, TopicPageRecord
from pipeline.store.db import chunked
from pipeline.store.history import record_history
from pipeline.store.topic_hash import EMPTY_SUM, add_page, page_digest, topic_hash

Change = Literal["new", "changed", "unchanged", "gone"]

# Content fields of an article record, in contract order (the rest is bookkeeping).
ARTICLE_FIELDS = (
    "title",
    "published_at",
    "updated_at",
    "author",
    "comment_count",
    "summary",
    "text",
    "topics",
    "language",
    "word_count",
)
CARD_FIELDS = ("title", "published_at", "comment_count", "summary")
# Card JSON key of when the card was read: a newer card beats the page for comment_count.
_OBSERVED_AT = "observed_at"
#: The page field an article's stored ``page`` leaves out: its record holds it as the page said
#: it (no card has one). Stored twice, the text made each article row ~3.5 KB longer, written
#: again at every card of the article and read back at each (stores before this keep theirs).
_STORED_ONCE = "text"


def record_id(url: str) -> str:
    """Stable id of the record at canonical ``url``: 16 hex digits of its SHA-256."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def _canonical(content: Mapping[str, Any]) -> tuple[str, str]:
    """``content`` as canonical JSON (sorted keys) and the SHA-256 of that JSON."""
    blob = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return blob, hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class RecordTable:
    """Reads and writes article and topic records on one SQLite connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def _log_change(
        self, record_id: str, kind: str, change: str, now: datetime, run_id: int | None
    ) -> int:
        cur = self._conn.execute(
            "INSERT INTO changes (record_id, kind, change, at, run_id) VALUES (?, ?, ?, ?, ?)",
            (record_id, kind, change, now.isoformat(), run_id),
        )
        return int(cur.lastrowid or 0)

    # -- articles ----------------------------------------------------------------------------
    def save_article(self, rec: ArticleRecord, now: datetime, run_id: int | None) -> Change:
        """Store what an article page says; returns how the merged record changed."""
        page = {f: getattr(rec, f) for f in ARTICLE_FIELDS}
        page["topics"] = list(rec.topics)
        page["sources"] = dict(rec.sources)
        row = self._article_row(rec.url)
        card = json.loads(row["card"]) if row and row["card"] else None
        listed_in = json.loads(row["listed_in"]) if row else []
        return self._write_article(
            url=rec.url,
            site=rec.site,
            page=page,
            card=card,
            listed_in=listed_in,
            fetched_at=rec.fetched_at,
            row=row,
            now=now,
            run_id=run_id,
        )

    def save_card(
        self, site: str, topic_url: str, card: CardRecord, now: datetime, run_id: int | None
    ) -> Change:
        """Store what a topic page's card says about an article (``card.url`` is canonical)."""
        row = self._article_row(card.url)
        page_json = row["page"] if row and row["page"] else None
        page = json.loads(page_json) if page_json else None
        listed_in = json.loads(row["listed_in"]) if row else []
        if topic_url not in listed_in:
            # sorted, not in discovery order: concurrent crawls meet topics in any order, and the
            # record (and its content hash) must not depend on it
            listed_in = sorted([*listed_in, topic_url])
        card_fields: dict[str, Any] = {f: getattr(card, f) for f in CARD_FIELDS}
        card_fields[_OBSERVED_AT] = now.isoformat()
        fetched_at = (
            datetime.fromisoformat(row["fetched_at"]) if row and row["fetched_at"] else None
        )
        return self._write_article(
            url=card.url,
            site=site,
            page=page,
            card=card_fields,
            listed_in=listed_in,
            fetched_at=fetched_at,
            row=row,
            now=now,
            run_id=run_id,
            page_json=page_json,
        )

    def _article_row(self, url: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._conn.execute(
            "SELECT * FROM articles WHERE url = ?", (url,)
        ).fetchone()
        return row

    def _write_article(
        self,
        *,
        url: str,
        site: str,
        page: dict[str, Any] | None,
        card: dict[str, Any] | None,
        listed_in: list[str],
        fetched_at: datetime | None,
        row: sqlite3.Row | None,
        now: datetime,
        run_id: int | None,
        page_json: str | None = None,
    ) -> Change:
        """Merge and write one article; ``page_json`` is ``page`` as stored, when unchanged."""
        stored = json.loads(row["record"]) if row is not None else None
        if page is not None and _STORED_ONCE not in page:  # stored without it: the record has it
            page = {**page, _STORED_ONCE: stored.get(_STORED_ONCE) if stored else None}
        merged = merge_article(
            page, card, self._topic_names(listed_in), card_newer=_card_newer(card, fetched_at)
        )
        # The content fields only: a new listing of the article changes its record (and seq, for
        # the feed) but not its content, so the search index need not write it again. The record
        # is stored as the JSON it is hashed from: the article text is serialized once, not twice.
        # The same content as stored (a card of an article whose page is stored, an unchanged
        # page fetched again) keeps its stored JSON and hash: read back in ~15 us, where
        # serializing and hashing it again took ~25.
        if row is not None and stored == merged:
            record_json, content_hash = str(row["record"]), str(row["content_hash"])
        else:
            record_json, content_hash = _canonical(merged)
        page_out = page_json
        if page_out is None and page:
            page_out = _dumps({k: v for k, v in page.items() if k != _STORED_ONCE})
        rid = record_id(url)
        fetched = fetched_at.isoformat() if fetched_at else None
        if row is None:
            seq = self._log_change(rid, "article", "new", now, run_id)
            self._conn.execute(
                """INSERT INTO articles (id, url, site, page, card, listed_in, record, content_hash,
                   status, first_seen_at, fetched_at, seq)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?)""",
                (
                    rid,
                    url,
                    site,
                    page_out,
                    _dumps(card) if card else None,
                    _dumps(listed_in),
                    record_json,
                    content_hash,
                    now.isoformat(),
                    fetched,
                    seq,
                ),
            )
            set_last_seen(self._conn, [(now.isoformat(), url)])
            return "new"
        changed = (
            content_hash != row["content_hash"]
            or row["status"] != "active"
            or listed_in != json.loads(row["listed_in"])
        )
        seq = self._log_change(rid, "article", "changed", now, run_id) if changed else row["seq"]
        if changed:
            before = {**(stored or {}), "status": row["status"]}
            record_history(
                self._conn,
                rid,
                before,
                {**merged, "status": "active"},
                now=now,
                seq=seq,
                run_id=run_id,
            )
        self._conn.execute(
            """UPDATE articles SET page = ?, card = ?, listed_in = ?, record = ?, content_hash = ?,
               status = 'active', fetched_at = ?, seq = ? WHERE url = ?""",
            (
                page_out,
                _dumps(card) if card else None,
                _dumps(listed_in),
                record_json,
                content_hash,
                fetched,
                seq,
                url,
            ),
        )
        set_last_seen(self._conn, [(now.isoformat(), url)])
        return "changed" if changed else "unchanged"

    def touch_articles(self, seen: Iterable[tuple[str, datetime]]) -> None:
        """Unchanged article pages (304), as ``(url, when)``: only ``last_seen_at`` moves."""
        set_last_seen(self._conn, [(when.isoformat(), url) for url, when in seen], stored_only=True)

    def mark_gone(self, url: str, now: datetime, run_id: int | None) -> Change | None:
        """The page at ``url`` is gone (404/410): its record is kept with status ``gone``."""
        for table, kind in (("articles", "article"), ("topics", "topic")):
            row = self._conn.execute(
                f"SELECT id, status FROM {table} WHERE url = ?", (url,)
            ).fetchone()
            if row is None or row["status"] == "gone":
                continue
            seq = self._log_change(row["id"], kind, "gone", now, run_id)
            if kind == "article":
                record_history(
                    self._conn,
                    row["id"],
                    {"status": row["status"]},
                    {"status": "gone"},
                    now=now,
                    seq=seq,
                    run_id=run_id,
                )
            if kind == "article":
                self._conn.execute(
                    "UPDATE articles SET status = 'gone', seq = ? WHERE url = ?", (seq, url)
                )
                set_last_seen(self._conn, [(now.isoformat(), url)])
            else:
                self._conn.execute(
                    "UPDATE topics SET status = 'gone', seq = ?, last_seen_at = ? WHERE url = ?",
                    (seq, now.isoformat(), url),
                )
            return "gone"
        page = self._conn.execute(
            "SELECT topic_url, page_no, article_urls FROM topic_pages WHERE page_url = ?", (url,)
        ).fetchone()
        if page is not None:
            self._conn.execute("DELETE FROM topic_pages WHERE page_url = ?", (url,))
            self._page_left(url, page)
        return None

    # -- topics ------------------------------------------------------------------------------
    def save_topic_page(
        self, rec: TopicPageRecord, card_urls: Sequence[str], now: datetime, run_id: int | None
    ) -> Change:
        """Store one page of a topic listing and update its topic record."""
        article_urls = _dumps(list(card_urls))
        before = self._conn.execute(
            "SELECT topic_url, page_no, article_urls FROM topic_pages WHERE page_url = ?",
            (rec.page_url,),
        ).fetchone()
        self._conn.execute(
            """INSERT INTO topic_pages (page_url, topic_url, page_no, article_urls, fetched_at)
               VALUES (?, ?, ?, ?, ?) ON CONFLICT (page_url) DO UPDATE SET
               topic_url = excluded.topic_url,
               page_no = excluded.page_no, article_urls = excluded.article_urls,
               fetched_at = excluded.fetched_at""",
            (rec.page_url, rec.topic_url, rec.page_no, article_urls, rec.fetched_at.isoformat()),
        )
        if before is not None and before["topic_url"] != rec.topic_url:
            self._page_left(rec.page_url, before)  # the page moved to another topic
            before = None
        row = self._conn.execute("SELECT * FROM topics WHERE url = ?", (rec.topic_url,)).fetchone()
        pages_sum = row["pages_sum"] if row else EMPTY_SUM
        if before is not None:
            old = page_digest(rec.page_url, before["page_no"], before["article_urls"])
            pages_sum = add_page(pages_sum, old, times=-1)
        pages_sum = add_page(pages_sum, page_digest(rec.page_url, rec.page_no, article_urls))
        name = rec.name or (row["name"] if row else None)
        description = rec.description if rec.page_no == 1 else (row["description"] if row else None)
        content_hash = topic_hash(name, description, pages_sum)
        rid = record_id(rec.topic_url)
        if row is None:
            seq = self._log_change(rid, "topic", "new", now, run_id)
            self._conn.execute(
                """INSERT INTO topics (id, url, site, name, description, content_hash, status,
                   first_seen_at, last_seen_at, fetched_at, seq, pages_sum)
                   VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?)""",
                (
                    rid,
                    rec.topic_url,
                    rec.site,
                    name,
                    description,
                    content_hash,
                    now.isoformat(),
                    now.isoformat(),
                    rec.fetched_at.isoformat(),
                    seq,
                    pages_sum,
                ),
            )
            return "new"
        changed = content_hash != row["content_hash"] or row["status"] != "active"
        seq = self._log_change(rid, "topic", "changed", now, run_id) if changed else row["seq"]
        self._conn.execute(
            """UPDATE topics SET name = ?, description = ?, content_hash = ?, status = 'active',
               last_seen_at = ?, fetched_at = ?, seq = ?, pages_sum = ? WHERE url = ?""",
            (
                name,
                description,
                content_hash,
                now.isoformat(),
                rec.fetched_at.isoformat(),
                seq,
                pages_sum,
                rec.topic_url,
            ),
        )
        return "changed" if changed else "unchanged"

    def _page_left(self, page_url: str, page: sqlite3.Row) -> None:
        """A stored page of ``page["topic_url"]`` no longer belongs to it (gone, or listed under
        another topic): its digest leaves the topic's sum. The topic's hash and seq are left as
        they are, as they were before schema 7: its next stored page brings them up to date."""
        self._conn.execute(
            "UPDATE topics SET pages_sum = ? WHERE url = ?",
            (
                add_page(
                    self._pages_sum(page["topic_url"]),
                    page_digest(page_url, page["page_no"], page["article_urls"]),
                    times=-1,
                ),
                page["topic_url"],
            ),
        )

    def _pages_sum(self, topic_url: str) -> str:
        row = self._conn.execute(
            "SELECT pages_sum FROM topics WHERE url = ?", (topic_url,)
        ).fetchone()
        return str(row[0]) if row is not None else EMPTY_SUM

    def topic_article_urls(self, topic_url: str) -> list[str]:
        """Article URLs a topic lists, in page order, each once."""
        seen: dict[str, None] = {}
        for urls in self._page_lists(topic_url):
            seen.update(dict.fromkeys(json.loads(urls)))
        return list(seen)

    def _page_lists(self, topic_url: str) -> Iterator[str]:
        """The stored JSON article list of each page of a topic, in page order."""
        for (urls,) in self._conn.execute(
            "SELECT article_urls FROM topic_pages WHERE topic_url = ? ORDER BY page_no, page_url",
            (topic_url,),
        ):
            yield urls

    def _topic_names(self, topic_urls: Sequence[str]) -> list[str]:
        names = []
        for url in topic_urls:
            row = self._conn.execute("SELECT name FROM topics WHERE url = ?", (url,)).fetchone()
            if row is not None and row["name"]:
                names.append(row["name"])
        return names

    # -- reads -------------------------------------------------------------------------------
    def iter_articles(
        self,
        *,
        since_seq: int = 0,
        site: str | None = None,
        fetched_only: bool = False,
        skip: Callable[[str, str, str], bool] | None = None,
    ) -> Generator[dict[str, Any], None, None]:
        """Articles in the export contract's shape, ordered by ``seq`` (change order).

        ``fetched_only`` leaves out articles known only from listing cards so far; ``skip``
        leaves out those for which ``skip(id, content_hash, status)`` is true, before their
        JSON is read.
        """
        rows = self._changed_rows(
            "articles", since_seq, site, "page IS NOT NULL" * fetched_only, _ARTICLE_COLUMNS
        )
        for row in rows:
            if skip is None or not skip(row["id"], row["content_hash"], row["status"]):
                yield self._article_out(row)

    def article_changes(
        self, *, since_seq: int = 0, fetched_only: bool = False
    ) -> Generator[tuple[int, str, str, str], None, None]:
        """``(seq, id, content_hash, status)`` of the articles changed after ``since_seq``, in
        change order: ``iter_articles`` without reading any record."""
        rows = self._changed_rows(
            "articles",
            since_seq,
            None,
            "page IS NOT NULL" * fetched_only,
            columns="seq, id, content_hash, status",
        )
        for row in rows:
            yield int(row[0]), str(row[1]), str(row[2]), str(row[3])

    def _changed_rows(
        self,
        table: str,
        since_seq: int,
        site: str | None,
        condition: str = "",
        columns: str = "*",
    ) -> Iterator[sqlite3.Row]:
        """Rows (``columns``) of ``table`` changed after ``since_seq`` (of one site), in change
        order."""
        where = (
            "seq > ?" + (" AND site = ?" if site else "") + (f" AND {condition}" * bool(condition))
        )
        params: tuple[Any, ...] = (since_seq, site) if site else (since_seq,)
        yield from self._conn.execute(
            f"SELECT {columns} FROM {table} WHERE {where} ORDER BY seq", params
        )

    def articles_by_id(self, ids: Iterable[str]) -> Iterator[dict[str, Any]]:
        """Articles with these ids (unknown ids skipped), in the export contract's shape."""
        for chunk in chunked(list(dict.fromkeys(ids))):
            marks = ",".join("?" * len(chunk))
            for row in self._conn.execute(
                f"SELECT {_ARTICLE_COLUMNS} FROM articles WHERE id IN ({marks})", chunk
            ):
                yield self._article_out(row)

    def active_article_hashes(self) -> dict[str, str]:
        """``{id: content_hash}`` of every active article: what the search index must hold."""
        return dict(self.iter_active_article_hashes())

    def iter_active_article_hashes(self) -> Iterator[tuple[str, str]]:
        """``(id, content_hash)`` of every active article, streamed (memory flat in N)."""
        for row in self._conn.execute(
            "SELECT id, content_hash FROM articles WHERE status = 'active'"
        ):
            yield str(row[0]), str(row[1])

    def _article_out(self, row: sqlite3.Row) -> dict[str, Any]:
        record = json.loads(row["record"])
        return {
            "kind": "article",
            "id": row["id"],
            "url": row["url"],
            "site": row["site"],
            **{f: record.get(f) for f in ARTICLE_FIELDS},
            "listed_in": self._topic_names(json.loads(row["listed_in"])),
            "first_seen_at": row["first_seen_at"],
            "last_seen_at": row["last_seen_at"],
            "fetched_at": row["fetched_at"],
            "content_hash": row["content_hash"],
            "status": row["status"],
            "seq": row["seq"],
            "sources": record.get("sources", {}),
        }

    def iter_topics(
        self, *, since_seq: int = 0, site: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Topics in the export contract's shape, ordered by ``seq``."""
        for row in self._changed_rows("topics", since_seq, site):
            urls = self.topic_article_urls(row["url"])
            yield {
                "kind": "topic",
                "id": row["id"],
                "url": row["url"],
                "site": row["site"],
                "name": row["name"],
                "description": row["description"],
                "article_urls": urls,
                "article_count": len(urls),
                "fetched_at": row["fetched_at"],
                "first_seen_at": row["first_seen_at"],
                "last_seen_at": row["last_seen_at"],
                "content_hash": row["content_hash"],
                "status": row["status"],
                "seq": row["seq"],
            }

    def counts(self) -> dict[str, int]:
        """Records by kind and status."""
        out: dict[str, int] = {}
        for table in ("articles", "topics"):
            for status, n in self._conn.execute(
                f"SELECT status, COUNT(*) FROM {table} GROUP BY status"
            ):
                out[f"{table}_{status}"] = int(n)
        return out


_ARTICLE_COLUMNS = (
    "*, (SELECT s.last_seen_at FROM article_seen s WHERE s.url = articles.url) AS last_seen_at"
)
"""An article's columns with its ``last_seen_at`` (``article_seen``)."""


def set_last_seen(
    conn: sqlite3.Connection,
    rows: list[tuple[str, str]],
    *,
    stored_only: bool = False,
    active_only: bool = False,
) -> None:
    """Set ``article_seen.last_seen_at`` from ``(when, url)`` rows, in one prepared statement:
    of every URL given (an article being written), or only of the articles stored
    (``stored_only``) or stored and active (``active_only``), as ``UPDATE articles`` did."""
    if stored_only or active_only:
        sql = (
            "INSERT INTO article_seen (last_seen_at, url) SELECT ?, url FROM articles "
            "WHERE url = ?" + (" AND status = 'active'" if active_only else "")
        )
    else:
        sql = "INSERT INTO article_seen (last_seen_at, url) VALUES (?, ?)"
    conn.executemany(
        sql + " ON CONFLICT (url) DO UPDATE SET last_seen_at = excluded.last_seen_at", rows
    )


def _card_newer(card: Mapping[str, Any] | None, page_fetched_at: datetime | None) -> bool:
    """The card was read after the article page was last fetched (200)."""
    observed = (card or {}).get(_OBSERVED_AT)
    if not observed or page_fetched_at is None:
        return False
    return datetime.fromisoformat(observed) > page_fetched_at


def merge_article(
    page: Mapping[str, Any] | None,
    card: Mapping[str, Any] | None,
    listed_names: Sequence[str],
    *,
    card_newer: bool = False,
) -> dict[str, Any]:
    """One article record from its page fields and its newest card (see module docstring).

    ``card_newer``: the card was read after the page, so its ``comment_count`` (the one field
    that moves without the page being republished) wins; the recrawl policy refetches article
    pages rarely and keeps comment counts current from the listings.
    """
    page = page or {}
    card = card or {}
    merged: dict[str, Any] = {}
    for name in ARTICLE_FIELDS:
        page_value, card_value = page.get(name), card.get(name)
        card_first = name == "summary" or (name == "comment_count" and card_newer)
        first, second = (card_value, page_value) if card_first else (page_value, card_value)
        merged[name] = first if first not in (None, "", []) else second
    if not merged["topics"]:
        merged["topics"] = list(dict.fromkeys(listed_names))
    merged["word_count"] = merged["word_count"] or 0
    merged["sources"] = dict(page.get("sources") or {})
    return merged
