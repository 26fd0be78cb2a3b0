"""The persistent frontier queue on SQLite (the ``pages`` table).

A URL is queued at most once per *cycle* (one complete pass over a site), so the table is both
the queue and the seen-set, and it survives restarts: a run killed at any moment leaves rows
``in_flight`` that the next run puts back in the queue. ``FrontierQueue`` in ``pipeline.frontier``
is the protocol this implements; a shared queue (Redis, Postgres) can implement it as well.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Container, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from isal import isal_zlib

from pipeline.models import PageState, SettledRuns, SkipLinks, Target, Validators
from pipeline.store.db import chunked

_STATES = ("queued", "in_flight", "done", "failed", "skipped")
_CLAIM_SQL = """
SELECT url, site, depth, topic_url, page_no, etag, last_modified, fetched_at, kind FROM pages
WHERE state = 'queued' AND site IN ({sites}) {not_hosts}
ORDER BY priority, seq LIMIT ?
"""


class SqliteFrontierQueue:
    """Frontier queue and per-page crawl state on one SQLite connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM pages").fetchone()
        self._seq = int(row[0])
        # claimed pages' validators, fetched_at and kind, read with the claim, for
        # ``validators`` and ``page_states`` (a recrawl asks for every 304's kind): nothing
        # changes a claimed row but its completion, which drops the entry
        self._claimed: dict[str, tuple[Validators, str | None, str | None]] = {}

    # -- cycles ------------------------------------------------------------------------------
    def current_cycle(self, site: str) -> tuple[int, bool] | None:
        """The newest cycle of ``site`` and whether it finished, or None before the first."""
        row = self._conn.execute(
            "SELECT cycle, finished_at FROM cycles WHERE site = ? ORDER BY cycle DESC LIMIT 1",
            (site,),
        ).fetchone()
        return None if row is None else (int(row[0]), row[1] is not None)

    def begin_cycle(self, site: str, now: datetime) -> int:
        """Start a new pass over ``site``; returns its number."""
        current = self.current_cycle(site)
        cycle = 1 if current is None else current[0] + 1
        self._conn.execute(
            "INSERT INTO cycles (site, cycle, started_at) VALUES (?, ?, ?)",
            (site, cycle, now.isoformat()),
        )
        return cycle

    def end_cycle(self, site: str, cycle: int, now: datetime) -> None:
        """Mark the pass finished: the next run starts a new one."""
        self._conn.execute(
            "UPDATE cycles SET finished_at = ? WHERE site = ? AND cycle = ?",
            (now.isoformat(), site, cycle),
        )

    # -- queue -------------------------------------------------------------------------------
    def enqueue(self, targets: Iterable[tuple[Target, str]], cycle: int) -> int:
        """Queue ``(target, host)`` pairs not yet queued in ``cycle``; returns how many were new."""
        before = self._conn.total_changes
        rows = []
        for target, host in targets:
            self._seq += 1
            rows.append(
                (
                    target.url,
                    target.site,
                    host,
                    target.depth,
                    target.topic_url,
                    target.page_no,
                    target.depth,
                    cycle,
                    self._seq,
                )
            )
        # one prepared statement for the page's links (a heavy theme has ~150 per page)
        self._conn.executemany(
            """
            INSERT INTO pages (url, site, host, depth, topic_url, page_no, priority, cycle,
                               state, seq)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?)
            ON CONFLICT (url) DO UPDATE SET
                cycle = excluded.cycle, state = 'queued', depth = excluded.depth,
                topic_url = COALESCE(excluded.topic_url, pages.topic_url),
                page_no = excluded.page_no, priority = excluded.priority,
                seq = excluded.seq, reason = NULL
            WHERE pages.cycle < excluded.cycle
            """,
            rows,
        )
        return self._conn.total_changes - before

    def claim(
        self, sites: Sequence[str], exclude_hosts: Collection[str], limit: int
    ) -> list[Target]:
        """Take up to ``limit`` queued targets of ``sites`` whose host is not excluded."""
        not_hosts = ""
        params: list[object] = list(sites)
        if exclude_hosts:
            not_hosts = f"AND host NOT IN ({','.join('?' * len(exclude_hosts))})"
            params.extend(exclude_hosts)
        sql = _CLAIM_SQL.format(sites=",".join("?" * len(sites)), not_hosts=not_hosts)
        rows = self._conn.execute(sql, [*params, limit]).fetchall()
        targets = [
            Target(url=r[0], site=r[1], depth=r[2], topic_url=r[3], page_no=r[4]) for r in rows
        ]
        self._claimed.update(
            (r[0], (Validators(etag=r[5], last_modified=r[6]), r[7], r[8])) for r in rows
        )
        self._conn.executemany(
            "UPDATE pages SET state = 'in_flight' WHERE url = ?", [(t.url,) for t in targets]
        )
        return targets

    def release_in_flight(self, sites: Sequence[str]) -> int:
        """Put targets left in flight by an interrupted run back in the queue."""
        cur = self._conn.execute(
            f"UPDATE pages SET state = 'queued' WHERE state = 'in_flight' "
            f"AND site IN ({','.join('?' * len(sites))})",
            list(sites),
        )
        return cur.rowcount

    def count(self, sites: Sequence[str], state: str = "queued") -> int:
        """How many pages of ``sites`` are in ``state``."""
        if state not in _STATES:
            raise ValueError(f"no page state {state!r}")
        # the state written out, not bound: only then can SQLite use the index of queued pages
        row = self._conn.execute(
            f"SELECT COUNT(*) FROM pages WHERE state = '{state}' "
            f"AND site IN ({','.join('?' * len(sites))})",
            list(sites),
        ).fetchone()
        return int(row[0])

    # -- per-page state ----------------------------------------------------------------------
    def complete(
        self,
        url: str,
        state: str,
        *,
        fetched_at: datetime | None = None,
        http_status: int | None = None,
        kind: str | None = None,
        validators: Validators | None = None,
        links: Sequence[Target] | None = None,
        reason: str | None = None,
    ) -> None:
        """Record the outcome of one page (``done``, ``failed`` or ``skipped``)."""
        self._claimed.pop(url, None)
        self._conn.execute(
            """
            UPDATE pages SET state = ?, reason = ?,
                fetched_at = COALESCE(?, fetched_at), http_status = COALESCE(?, http_status),
                kind = COALESCE(?, kind),
                etag = CASE WHEN ? THEN ? ELSE etag END,
                last_modified = CASE WHEN ? THEN ? ELSE last_modified END
            WHERE url = ?
            """,
            (
                state,
                reason,
                fetched_at.isoformat() if fetched_at else None,
                http_status,
                kind,
                validators is not None,
                validators.etag if validators else None,
                validators is not None,
                validators.last_modified if validators else None,
                url,
            ),
        )
        if links is not None:
            self._conn.execute(
                "INSERT OR REPLACE INTO page_links (url, links) VALUES (?, ?)",
                (url, _pack_links(links)),
            )

    def complete_not_modified(self, pages: Iterable[tuple[str, datetime]]) -> None:
        """Pages that answered 304, as ``(url, fetched_at)``: ``complete(url, "done",
        fetched_at=..., http_status=304)`` for each, in one prepared statement (a batch of a
        recrawl's 304s is up to 64 pages)."""
        rows = []
        for url, fetched_at in pages:
            self._claimed.pop(url, None)
            rows.append((fetched_at.isoformat(), url))
        self._conn.executemany(
            "UPDATE pages SET state = 'done', reason = NULL, fetched_at = ?, http_status = 304 "
            "WHERE url = ?",
            rows,
        )

    def validators(self, url: str) -> Validators:
        """The ETag / Last-Modified stored for ``url`` (empty when never fetched)."""
        claimed = self._claimed.get(url)
        if claimed is not None:
            return claimed[0]
        row = self._conn.execute(
            "SELECT etag, last_modified FROM pages WHERE url = ?", (url,)
        ).fetchone()
        return Validators() if row is None else Validators(etag=row[0], last_modified=row[1])

    def known_links(
        self, url: str, skip: SkipLinks | None = None, settled: SettledRuns | None = None
    ) -> list[Target]:
        """The links followed from ``url`` last time it was fetched (replayed on a 304).

        Args:
            url: the page.
            skip: ``skip(site)`` gives collections of URLs to leave out before they are built
                (an article's ~50 links are mostly ones the crawl has just dealt with).
            settled: the runs of page numbers ``skip`` was found to leave out whole, kept by
                the caller beside it (``SettledRuns``).
        """
        row = self._conn.execute("SELECT links FROM page_links WHERE url = ?", (url,)).fetchone()
        if row is None:
            return []
        return _unpack_links(row[0], skip, settled)

    def page_states(self, urls: Sequence[str]) -> dict[str, PageState]:
        """The state of those of ``urls`` the queue knows, in one query per 500 URLs (a sitemap
        lists tens of thousands); pages claimed and not yet completed as they were claimed,
        without a query (a recrawl asks for every 304's)."""
        found: dict[str, PageState] = {}
        rest = []
        for url in urls:
            claimed = self._claimed.get(url)
            if claimed is None:
                rest.append(url)
            else:
                found[url] = _page_state(claimed[1], claimed[2])
        for chunk in chunked(rest):
            rows = self._conn.execute(
                "SELECT url, fetched_at, kind FROM pages "
                f"WHERE url IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for url, fetched, kind in rows:
                found[url] = _page_state(fetched, kind)
        return found

    def known_links_of(
        self, urls: Sequence[str], skip: SkipLinks | None = None
    ) -> dict[str, Target]:
        """The links followed from each of ``urls`` last time, each linked URL once (the first
        found), in one query per 500 URLs; ``skip`` as for ``known_links``."""
        found: dict[str, Target] = {}

        def left_out(site: str) -> Sequence[Container[str]]:
            # pages share most of their links: those found already are left out too
            return (found, *skip(site)) if skip is not None else (found,)

        for links in self.known_links_each(urls, left_out):
            for target in links:
                found.setdefault(target.url, target)
        return found

    def known_links_each(
        self,
        urls: Sequence[str],
        skip: SkipLinks | None = None,
        settled: SettledRuns | None = None,
    ) -> Iterator[list[Target]]:
        """The links followed from each of ``urls`` last time (those that have some), a page at
        a time, in one query per 500 URLs; ``skip`` and ``settled`` as for ``known_links``,
        ``skip`` asked again for each page, so what the caller did with one page's links can
        leave them out of the next's.

        An author archive of a large site links tens of thousands of pages: taken a page at a
        time, only one such page's links are held at once.
        """
        for chunk in chunked(urls):
            blobs = self._conn.execute(
                f"SELECT links FROM page_links WHERE url IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()  # read whole: the caller may write to the table between pages
            for (blob,) in blobs:
                yield _unpack_links(blob, skip, settled)

    def requests_by_state(self, sites: Sequence[str]) -> dict[str, int]:
        """Page counts per state for ``sites``."""
        rows = self._conn.execute(
            f"SELECT state, COUNT(*) FROM pages WHERE site IN ({','.join('?' * len(sites))}) "
            "GROUP BY state",
            list(sites),
        ).fetchall()
        return {r[0]: int(r[1]) for r in rows}


def _page_state(fetched_at: str | None, kind: str | None) -> PageState:
    return PageState(datetime.fromisoformat(fetched_at) if fetched_at else None, kind)


_TEXT_LINKS = b"L2\t"  # the head of a text-packed blob (JSON blobs start with "[")
_TEXT_LINKS_RUNS = b"L3\t"  # the same with runs of page numbers
_TEXT_LINKS_L1 = b"L1\t"  # the text shape development builds of schema 4 wrote
_MIN_RUN = 3  # consecutive page numbers written as one run, from so many on


def _pack_links(links: Sequence[Target]) -> bytes:
    """Targets as a zlib'd blob (deflated by ISA-L: ~8.5 KB of an article's links in 11.6 us
    against zlib's 30.1 at level 1, a little smaller; inflated in 10.2 against 16.3 us).

    When they share their site and depth (a page's links do), text: a
    ``L2<TAB>site<TAB>depth<TAB>count`` line, a line per link with its URL, then a line per link
    with what is off the defaults, ``topic_url<TAB>page_no`` (no topic: empty), or nothing.
    Pagination targets with consecutive page numbers whose URLs differ only in the number
    (``.../page/7/``, ``.../page/8/``, ...; ``_MIN_RUN`` or more in a row) are one line each
    run instead: the head is then ``L3<TAB>site<TAB>depth<TAB>count<TAB>runs``, and a line per
    run comes between the URL lines and the others,
    ``position<TAB>topic_url<TAB>prefix<TAB>suffix<TAB>first<TAB>last``, where position is how
    many of the URL lines come before the run.
    Otherwise, or should a value hold a tab or a line break (a canonical URL never does), the
    JSON ``[url, site, depth, topic_url, page_no]`` rows of every target.

    Every fetched page's links are packed (~50 an article, ~400 a topic page of a 20k-article
    site, most of those its topic's pagination: a few runs) and every 304 of a recrawl reads
    them back: the URLs on lines of their own are tested against what the crawl has dealt with
    in one comprehension, only the links left are built, and a run found all dealt with
    (``SettledRuns``) is not built again.
    """
    first = links[0] if links else None
    if first is not None and all(t.site == first.site and t.depth == first.depth for t in links):
        topics = [t.topic_url for t in links]
        values = "".join([first.site, *(t.url for t in links), *filter(None, topics)])
        if "\t" not in values and "\n" not in values:
            # an article's links hold no pagination: no loop a link looking for runs
            paged = len(topics) - topics.count(None) >= _MIN_RUN
            singles, runs = _runs(links) if paged else (links, [])
            head = f"{first.site}\t{first.depth}\t{len(singles)}"
            lines = [f"L3\t{head}\t{len(runs)}" if runs else f"L2\t{head}"]
            lines += [t.url for t in singles]
            lines += ["\t".join(map(str, run)) for run in runs]
            lines += [
                f"{t.topic_url or ''}\t{t.page_no}" if t.topic_url or t.page_no != 1 else ""
                for t in singles
            ]
            return isal_zlib.compress("\n".join(lines).encode(), 1)
    rows = [[t.url, t.site, t.depth, t.topic_url, t.page_no] for t in links]
    return isal_zlib.compress(json.dumps(rows, separators=(",", ":")).encode(), 1)


class _Run(NamedTuple):
    """Consecutive page numbers of a topic whose URLs are ``prefix + number + suffix``."""

    position: int  # how many of the blob's URL lines come before it
    topic_url: str
    prefix: str
    suffix: str
    first: int
    last: int


def _runs(links: Sequence[Target]) -> tuple[list[Target], list[_Run]]:
    """``links`` as the targets written one a line and the runs of page numbers (in order)."""
    singles: list[Target] = []
    runs: list[_Run] = []
    start, count = 0, len(links)
    while start < count:
        target = links[start]
        topic_url = target.topic_url
        if topic_url is None:
            singles.append(target)
            start += 1
            continue
        number = target.page_no
        cut = target.url.rfind(str(number))
        prefix, suffix = target.url[: max(cut, 0)], target.url[cut + len(str(number)) :]
        end = start + 1
        if cut >= 0:
            while end < count:
                link = links[end]
                number += 1
                if link.page_no != number or link.topic_url != topic_url:
                    break
                if link.url != f"{prefix}{number}{suffix}":
                    break
                end += 1
        if end - start >= _MIN_RUN:
            last = target.page_no + end - start - 1
            runs.append(_Run(len(singles), topic_url, prefix, suffix, target.page_no, last))
        else:
            singles.extend(links[start:end])
        start = end
    return singles, runs


def _unpack_links(
    blob: bytes, skip: SkipLinks | None = None, settled: SettledRuns | None = None
) -> list[Target]:
    """The targets of a ``_pack_links`` blob less the URLs ``skip`` leaves out, each target
    built only once it is kept (a page's links are mostly ones a recrawl has dealt with); blobs
    of every shape earlier releases wrote are read too. ``settled``: the runs of page numbers
    found all left out by ``skip`` so far, kept by its owner (read and added to)."""
    data = isal_zlib.decompress(blob)
    if data.startswith((_TEXT_LINKS, _TEXT_LINKS_RUNS)):
        return _unpack_text(data, skip, settled)
    if data.startswith(_TEXT_LINKS_L1):  # a line a link: its URL, or url<TAB>topic<TAB>page_no
        head, _, body = data.decode().partition("\n")
        _tag, site, depth = head.split("\t")
        split = [line.partition("\t") for line in (body.split("\n") if body else ())]
        urls = _left_in([url for url, _, _ in split], site, skip)
        return _targets(site, int(depth), urls, {url: extra for url, _, extra in split})
    kept = []
    left_out: dict[str, Sequence[Container[str]]] = {}
    for url, site, depth, topic_url, page_no in _json_link_rows(json.loads(data)):
        if site not in left_out:
            left_out[site] = skip(site) if skip is not None else ()
        if not any(url in urls for urls in left_out[site]):
            kept.append(Target(url, site, depth, topic_url, page_no))
    return kept


def _unpack_text(data: bytes, skip: SkipLinks | None, settled: SettledRuns | None) -> list[Target]:
    """``_unpack_links`` of a text blob: ``L2``, or ``L3`` (the same with runs, between the URL
    lines and the others), the URL lines between runs and each run's targets in their order."""
    head, _, body = data.decode().partition("\n")
    _tag, site, depth_text, count, *run_count = head.split("\t")  # L2 states no runs
    n, runs, depth = int(count), int(run_count[0]) if run_count else 0, int(depth_text)
    # the URL and run lines only: the rest (a line a link off the defaults) if a URL is kept
    lines = body.split("\n", n + runs)
    urls = lines[:n]
    # An article's or a topic page's URL lines in a recrawl: all dealt with, nothing built.
    kept = _left_in(urls, site, skip)
    extra = (
        dict(zip(urls, lines[n + runs].split("\n") if len(lines) > n + runs else (), strict=True))
        if kept
        else {}
    )
    if not runs:
        return _targets(site, depth, kept, extra)
    out: list[Target] = []
    done = 0  # URL lines read
    for line in lines[n : n + runs]:
        position, topic_url, prefix, suffix, first, last = line.split("\t")
        if kept:
            out += _targets(site, depth, _left_in(urls[done : int(position)], site, skip), extra)
        done = int(position)
        run = _Run(int(position), topic_url, prefix, suffix, int(first), int(last))
        out += _run_targets(site, depth, run, skip, settled)
    if kept:
        out += _targets(site, depth, _left_in(urls[done:], site, skip), extra)
    return out


def _run_targets(
    site: str, depth: int, run: _Run, skip: SkipLinks | None, settled: SettledRuns | None
) -> list[Target]:
    """The targets of one run less those ``skip`` leaves out; none when ``settled`` says the
    run was all left out before, and the run is added to it when it is all left out now."""
    key = (site, run.prefix, run.suffix)
    if skip is not None and settled is not None and settled.covers(key, run.first, run.last):
        return []
    numbers = range(run.first, run.last + 1)
    urls = [f"{run.prefix}{number}{run.suffix}" for number in numbers]
    kept = _left_in(urls, site, skip)
    if not kept:
        if skip is not None and settled is not None:
            settled.add(key, run.first, run.last)
        return []
    number_of = dict(zip(urls, numbers, strict=True)) if len(kept) < len(urls) else None
    return [
        Target(url, site, depth, run.topic_url, number_of[url] if number_of else run.first + i)
        for i, url in enumerate(kept)
    ]


def _left_in(urls: list[str], site: str, skip: SkipLinks | None) -> list[str]:
    """``urls`` less those ``skip`` leaves out, tested in one comprehension each (no call a
    link)."""
    for dealt_with in skip(site) if skip is not None else ():
        urls = [url for url in urls if url not in dealt_with]
    return urls


def _targets(site: str, depth: int, urls: list[str], extra: Mapping[str, str]) -> list[Target]:
    """The targets of text-packed ``urls``, with what each has off the defaults in ``extra``."""
    return [
        Target(url, site, depth) if not extra[url] else _off_defaults(url, site, depth, extra[url])
        for url in urls
    ]


def _off_defaults(url: str, site: str, depth: int, extra: str) -> Target:
    topic_url, page_no = extra.split("\t")
    return Target(url, site, depth, topic_url or None, int(page_no))


def _json_link_rows(packed: list[Any]) -> list[list[Any]]:
    """The ``[url, site, depth, topic_url, page_no]`` rows of a JSON blob: rows, or the
    ``[site, depth, entries]`` shape of earlier releases (an entry a URL or
    ``[url, topic_url, page_no]``)."""
    if len(packed) == 3 and isinstance(packed[0], str):
        site, depth, entries = packed
        return [
            [e, site, depth, None, 1] if isinstance(e, str) else [e[0], site, depth, e[1], e[2]]
            for e in entries
        ]
    return packed
