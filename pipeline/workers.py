"""Fetch, extract and normalize beside the crawl: child processes that turn targets into records.

Fetching a page through httpx2, parsing it and reading its fields costs about 2.5 ms of Python,
more than storing and queueing it; in the crawl's own interpreter it runs on the core that also
drives the event loop, so the crawl runs at the speed of one core while the second idles. An
unchanged recrawl is worse: it is all 304s, and the fetch path is half of each. ``PageWorkers``
sends each target the crawl has claimed (with its validators) to a child process; the child
fetches it with its own client, extracts and normalizes it, and sends back the fetch's outcome
(the page without its text) and the record. The crawl process keeps the frontier, the host gate,
robots.txt and the store: it decides what is fetched when, the children only do the work.
It also fetches a share of the pages itself ("caller runs"): with all of them sent to one child,
an unchanged recrawl left the crawl's loop idle half the time, waiting. And a child may hold
pages ahead of its request slots (``_AHEAD``, while no host has a gap to keep between requests):
each waits there for a slot, taken the moment one frees, instead of the answer going round the
crawl's busy loop before the next page is even claimed.

A small crawl never pays for a process: the children start once the crawl expects
``START_AFTER`` pages or more (``expect``) or has started that many, and pages are fetched and
extracted in the crawl's process until one answers (``fetch`` returns None: the caller does
it). ``crawl.extract_workers`` 0 keeps it all in the crawl's process.

The children are ``python`` processes speaking length-prefixed pickles over their stdin and
stdout, not a ``ProcessPoolExecutor``: a pool's workers outlive a crawl killed with ``kill -9``
(they wait on a queue they hold both ends of), where these read end-of-file and exit. A child
fetches many pages at once and answers each as it is done, by its job number; it extracts one
page at a time and says which before it starts, so the page it was on when it died (a parser
crash) or overran ``crawl.extract_timeout`` (a page that takes the parser forever) is known: that
page fails, counted as ``extract_crashed`` or ``extract_timeout``, and the pages it was still
fetching go to a new child. A child that dies with no page on the parser (killed from outside)
hands all its pages on; one that was in flight in ``_MAX_DEATHS`` such deaths fails. A
Retry-After a child receives reaches the crawl's host gate at once. Each child runs in its own
process group: Ctrl-C at a terminal is the crawl's to handle, and in-flight pages still finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import logging
import math
import os
import pickle
import struct
import sys
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import IO, Any

from pipeline import heap
from pipeline.config import CrawlSettings, SiteConfig
from pipeline.errors import ExtractError, FetchError, PageSkipped
from pipeline.extract import extract_page
from pipeline.fetch import fetch_page, make_client
from pipeline.frontier import Frontier, canonicalize_url, out_of_scope_reason
from pipeline.models import (
    ArticleRecord,
    Extracted,
    Fetched,
    Target,
    TopicPageRecord,
    Validators,
)
from pipeline.normalize import normalize

__all__ = [
    "START_AFTER",
    "Answer",
    "Extraction",
    "PageWorkers",
    "WorkerError",
    "extract_here",
    "worker_count",
]

logger = logging.getLogger(__name__)

#: Pages the crawl fetches and extracts itself before it starts the children.
START_AFTER = 64
#: The child's program (``-m pipeline.workers`` would import this module twice).
_CHILD = "import sys; from pipeline.workers import main; sys.exit(main(sys.argv[1:]))"
_HEADER = struct.Struct("!I")
_PROTOCOL = pickle.HIGHEST_PROTOCOL
_READY = b"ready"
_CLOSE_SECONDS = 5.0  # a child given this long to exit after its stdin closes, then killed
_PIPE_BYTES = 1 << 20  # frames go down the pipe in one write, not 64 KB slices
#: Deaths of children a page may be in flight for, none of them its fault, before it fails.
_MAX_DEATHS = 2
#: The share of ``crawl.concurrency`` the crawl's process fetches itself when its children hold
#: the rest. Measured on a 20k-article site, 2 cores, concurrency 16, one child (bench/README):
#: an all-304 recrawl left the crawl's loop idle half the time waiting on the child without it
#: (10.6 s), 9.2-9.4 s with a quarter, 9.5-9.7 s with half; the first crawl was unchanged.
_CALLER_SHARE = 0.25
#: Pages a child may hold waiting for a request slot, per page of ``crawl.concurrency``, for
#: hosts with no gap to keep between requests (``HostGate.all_may_queue``): a slot that frees is
#: taken in the child at once, not after the answer has gone round the crawl's busy loop. Same
#: site and machine, all-304 recrawl: 9.2 / 9.3 s without, 7.7 / 7.8 s with two (first crawl
#: 83.4 / 83.8 s, unchanged).
_AHEAD = 2

# What a child sends about a job: (job number, one of these, a value).
_DONE = 0  # (Fetched without its text, Extraction or None for a 304)
_EXTRACTING = 1  # None: the page is on the parser now
_RETRY_AFTER = 2  # seconds, for the host gate
_FAILED = 3  # the FetchError or PageSkipped the fetch raised
_RAISED = 4  # the traceback text of anything else (a bug: the crawl counts an error)

Extraction = tuple[Extracted, ArticleRecord | TopicPageRecord | None]
"""What a page becomes: the extracted page and its record (None for pages that are neither)."""
Answer = tuple[Fetched, Extraction | None]
"""A child's answer: the fetch's outcome (its ``text`` left behind) and, unless the page was not
modified, its extraction."""


def worker_count(setting: int | None) -> int:
    """``crawl.extract_workers`` as a number: by default 1 when this process may use two or
    more cores (the crawl loop keeps one busy), else 0."""
    if setting is not None:
        return setting
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 1 if (cores or 1) > 1 else 0


class WorkerError(Exception):
    """Fetching or extraction raised in a child; the message holds the child's traceback."""


def extract_here(
    fetched: Fetched, target: Target, site: SiteConfig, *, link_texts: bool = False
) -> Extraction:
    """Extract and normalize a page in this process; the texts of a listing's links only,
    unless ``link_texts`` (the crawl uses them for pagination alone)."""
    page = extract_page(fetched.text, fetched.url, selectors=site.selectors, link_texts=link_texts)
    return page, normalize(page, target, fetched_at=fetched.fetched_at, site=site)


@dataclass(slots=True, eq=False)
class _Job:
    number: int
    frame: bytes
    target: Target
    host: str
    future: asyncio.Future[Answer | None]
    on_retry_after: Callable[[float], None] | None
    deaths: int = 0


@dataclass(slots=True, eq=False)
class _Child:
    process: asyncio.subprocess.Process
    jobs: dict[int, _Job] = field(default_factory=dict)  # sent and not answered
    hosts: Counter[str] = field(default_factory=Counter)  # the jobs' hosts
    extracting: _Job | None = None  # the page on its parser, as it last said
    ready: bool = False
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # ready, or dead
    timed_out: bool = False
    reader: asyncio.Task[None] | None = None
    watchdog: asyncio.TimerHandle | None = None


class PageWorkers:
    """The fetching and extracting children of one crawl (``Crawler`` drives it inside its event
    loop).

    ``fetch`` is the one call: it counts pages, starts the children after ``START_AFTER`` of
    them, and returns None (fetch it yourself, inside ``own_request``) until a child is ready,
    and whenever every child already holds its share of ``crawl.concurrency``
    (``_CALLER_SHARE``) and the crawl's process has a request slot of its own free. ``close``
    ends them.

    Request slots: a child sends at most its share of ``crawl.concurrency`` (and of
    ``crawl.per_host_concurrency`` to one host) at once, the crawl's process the rest. A page the
    crawl started ``ahead`` (``HostGate.ahead``) waits in a child for one of the child's slots,
    or in ``own_request`` for one of the crawl's.
    """

    def __init__(
        self,
        sites: Sequence[SiteConfig],
        settings: CrawlSettings,
        *,
        workers: int,
        timeout: float,
    ) -> None:
        self._sites = list(sites)
        self._settings = settings
        self._wanted = workers
        self._timeout = timeout
        # pages a child holds at most; past that the crawl's process fetches them itself
        share = settings.concurrency * (1 - _CALLER_SHARE) / max(workers, 1)
        self._depth = max(1, math.ceil(share))  # its request slots
        host_share = settings.per_host_concurrency * (1 - _CALLER_SHARE) / max(workers, 1)
        self._host_depth = max(1, math.ceil(host_share))  # its request slots for one host
        self._backlog = math.ceil(settings.concurrency * _AHEAD / max(workers, 1))
        self._own: Counter[str] = Counter()  # the crawl's own requests in flight, by host
        self._own_total = 0
        self._freed = asyncio.Event()  # a request slot may have freed: see own_request
        self._children: list[_Child] = []
        self._readers: set[asyncio.Task[None]] = set()  # until each has settled its child
        self._numbers = itertools.count()
        self._pages = 0
        self._closed = False
        self._starting: asyncio.Task[None] | None = None
        self._started = 0
        self._answered = 0
        self.restarts = 0

    @property
    def pids(self) -> list[int]:
        """Process ids of the running children."""
        return [c.process.pid for c in self._children]

    @property
    def stats(self) -> dict[str, int]:
        """For the run report: children started, pages they extracted, children replaced."""
        return {"workers": self._started, "pages": self._answered, "restarts": self.restarts}

    @property
    def ahead(self) -> int:
        """Pages the crawl may start beyond ``crawl.concurrency`` (``HostGate.ahead``): they
        wait in a child for a request slot; 0 without a ready child."""
        ready = sum(c.ready for c in self._children)
        return ready * self._backlog

    async def prepare(self) -> None:
        """With ``START_AFTER`` 0, start the children now and wait until they can take pages."""
        if START_AFTER == 0 and self._can_start and self._starting is None:
            self.start()
            assert self._starting is not None
            await self._starting
            for child in list(self._children):
                await child.settled.wait()

    async def fetch(
        self,
        target: Target,
        validators: Validators | None = None,
        on_retry_after: Callable[[float], None] | None = None,
        *,
        may_queue: bool = False,
    ) -> Answer | None:
        """Fetch, extract and normalize ``target`` in a child, when one is ready.

        Args:
            target: the claimed page.
            validators: ETag / Last-Modified for a conditional GET.
            on_retry_after: told the seconds of each Retry-After the child receives, at once.
            may_queue: the page may wait in a child for a request slot (``HostGate.may_queue``);
                otherwise a child takes it only with a slot free for it now.

        Returns:
            The fetched page (without its text) and its extraction (None on a 304); None when
            no child took it (none ready, every one holding its share while the caller has a
            slot of its own or the page may not wait, or none left to take it): the caller
            fetches it, inside ``own_request``.

        Raises:
            FetchError, PageSkipped: as ``pipeline.fetch.fetch_page`` raises them.
            ExtractError: the child died on this page (``extract_crashed``) or took longer
                than ``crawl.extract_timeout`` on it (``extract_timeout``).
            WorkerError: fetching or extraction raised in the child (a bug: the crawl counts
                an error).
        """
        self._pages += 1
        if self._pages > START_AFTER:
            self.start()
        child = self._least_busy()
        if child is None:
            return None  # none ready: the crawl's process takes it
        host = Frontier.host(target.url)
        if (len(child.jobs) >= self._depth or child.hosts[host] >= self._host_depth) and (
            not may_queue or len(child.jobs) >= self._depth + self._backlog or self._own_free(host)
        ):
            return None  # no slot free in the child, and the page may not or need not wait there
        number = next(self._numbers)
        frame = pickle.dumps((number, target, validators, host), _PROTOCOL)
        future: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()
        self._send(child, _Job(number, frame, target, host, future, on_retry_after))
        return await future

    @contextlib.asynccontextmanager
    async def own_request(self, host: str) -> AsyncIterator[None]:
        """Hold one of the crawl's own request slots for ``host`` (waiting for one: a page
        started ahead, or handed back by a child that died): those the children may be using
        (each its share, or its pages if fewer) and the crawl's own stay within
        ``crawl.concurrency`` and ``crawl.per_host_concurrency``."""
        while not self._own_free(host):
            self._freed.clear()
            await self._freed.wait()
        self._own[host] += 1
        self._own_total += 1
        try:
            yield
        finally:
            self._own[host] -= 1
            self._own_total -= 1
            self._freed.set()

    def _own_free(self, host: str) -> bool:
        busy = sum(min(self._depth, len(c.jobs)) for c in self._children)
        busy_host = sum(min(self._host_depth, c.hosts[host]) for c in self._children)
        return (
            self._own_total + busy < self._settings.concurrency
            and self._own[host] + busy_host < self._settings.per_host_concurrency
        )

    def expect(self, pages: int) -> None:
        """The crawl knows it has about ``pages`` pages to go: with ``START_AFTER`` or more, the
        children start now, without waiting for them (importing one takes ~0.5 s, 5 % of a
        20k-page recrawl), rather than after the first ``START_AFTER`` pages."""
        if pages >= START_AFTER:
            self.start()

    def start(self) -> None:
        """Start the children now, without waiting for them; they take pages once ready. Done
        once; ``fetch`` does it after ``START_AFTER`` pages."""
        if self._starting is None and self._can_start:
            self._starting = asyncio.create_task(self._start_all())

    @property
    def _can_start(self) -> bool:
        return self._wanted > 0 and not self._closed

    def _least_busy(self) -> _Child | None:
        ready = [c for c in self._children if c.ready]
        return min(ready, key=lambda c: len(c.jobs)) if ready else None

    # -- children ----------------------------------------------------------------------------
    async def _start_all(self) -> None:
        for _ in range(self._wanted):
            if self._closed:
                return
            await self._start_child()

    async def _start_child(self) -> _Child | None:
        level = str(logging.getLogger().getEffectiveLevel())
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _CHILD,
                level,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                process_group=0,  # not the terminal's foreground group: Ctrl-C is the crawl's
            )
        except OSError as exc:
            logger.warning("cannot fetch beside the crawl (%s); fetching in the crawl", exc)
            self._closed = True
            return None
        child = _Child(process)
        self._children.append(child)
        self._started += 1
        assert process.stdin is not None
        _widen(process.stdin.transport.get_extra_info("pipe"))
        limits = (self._depth, self._host_depth)
        process.stdin.write(_frame(pickle.dumps((self._sites, self._settings, limits), _PROTOCOL)))
        child.reader = asyncio.create_task(self._read(child))
        self._readers.add(child.reader)
        child.reader.add_done_callback(self._readers.discard)
        return child

    def _send(self, child: _Child, job: _Job) -> None:
        child.jobs[job.number] = job
        child.hosts[job.host] += 1
        stdin = child.process.stdin
        assert stdin is not None
        stdin.write(_frame(job.frame))  # the pipe's buffer grows; the child reads in order

    def _extracting(self, child: _Child, job: _Job | None) -> None:
        """Note the page on the child's parser, and time it."""
        child.extracting = job
        if child.watchdog is not None:
            child.watchdog.cancel()
            child.watchdog = None
        if job is not None:
            loop = asyncio.get_running_loop()
            child.watchdog = loop.call_later(self._timeout, self._overran, child, job)

    def _overran(self, child: _Child, job: _Job) -> None:
        if child.extracting is job and child.process.returncode is None:
            logger.warning(
                "extraction of %s took over %s s; restarting its worker",
                job.target.url,
                self._timeout,
            )
            child.timed_out = True
            child.process.kill()

    async def _read(self, child: _Child) -> None:
        """Hand each answer to the job it belongs to; replace the child when it dies."""
        stdout = child.process.stdout
        assert stdout is not None
        try:
            async for body in _frames(stdout):
                if not child.ready:
                    child.ready = body == _READY
                    child.settled.set()
                    continue
                number, kind, value = pickle.loads(body)
                job = child.jobs.get(number)
                if job is None:
                    continue
                if kind == _EXTRACTING:
                    self._extracting(child, job)
                elif kind == _RETRY_AFTER:
                    if job.on_retry_after is not None:
                        job.on_retry_after(value)
                else:
                    del child.jobs[number]
                    child.hosts[job.host] -= 1
                    self._freed.set()
                    if child.extracting is job:
                        self._extracting(child, None)
                    self._answered += kind == _DONE and value[1] is not None
                    if not job.future.done():
                        _settle(job, kind, value)
        except ConnectionError:
            pass
        await self._died(child)

    async def _died(self, child: _Child) -> None:
        self._children.remove(child)  # no new page goes to it
        code = await child.process.wait()
        child.settled.set()
        culprit = child.extracting
        self._extracting(child, None)
        jobs = [job for job in child.jobs.values() if job is not culprit]
        child.jobs.clear()
        child.hosts.clear()
        self._freed.set()
        if self._closed and not jobs and culprit is None:
            return
        if not child.ready:  # it could not even start: this crawl fetches in its own process
            logger.warning(
                "a fetch worker failed to start (exit status %s); fetching in the crawl's process",
                code,
            )
            self._closed = True
            for job in jobs:
                _hand_back(job)
            return
        if culprit is not None:  # the page on its parser: the one that crashed it or overran
            reason = "extract_timeout" if child.timed_out else "extract_crashed"
            detail = f"over {self._timeout:g} s" if child.timed_out else f"exit status {code}"
            _crashed(culprit, reason, detail)
        self.restarts += 1
        replacement = None if self._closed else await self._start_child()
        for job in jobs:  # still fetching: not at fault, unless it keeps being there
            job.deaths += culprit is None
            if job.deaths >= _MAX_DEATHS:
                _crashed(job, "extract_crashed", f"{job.deaths} workers died with it")
            elif replacement is None:
                _hand_back(job)
            else:
                self._send(replacement, job)

    async def close(self) -> None:
        """End the children: each drops what it is still fetching (the crawl closes them once
        every page it sent is answered) and exits; one killed after ``_CLOSE_SECONDS`` leaves
        its pages to ``_died``."""
        self._closed = True
        if self._starting is not None:
            with contextlib.suppress(Exception):
                await self._starting
        # A child that died a moment ago may be starting its replacement (_died): its reader is
        # awaited too, and the replacement ended in the next pass. _died starts none once
        # closed, and no child is asked twice, so the passes end.
        asked: dict[int, _Child] = {}  # held, so that no id is reused
        while True:
            children = [c for c in self._children if id(c) not in asked]
            if not children and not self._readers:
                return
            asked.update((id(c), c) for c in children)
            for child in children:
                if child.process.stdin is not None:
                    child.process.stdin.close()
            for child in children:
                try:
                    await asyncio.wait_for(child.process.wait(), _CLOSE_SECONDS)
                except TimeoutError:
                    child.process.kill()
            # each settles what its child left: see _died
            await asyncio.gather(*self._readers, return_exceptions=True)


def _settle(job: _Job, kind: int, value: Any) -> None:
    if kind == _DONE:
        job.future.set_result(value)
    elif kind == _FAILED:
        job.future.set_exception(value)
    else:
        job.future.set_exception(WorkerError(f"fetching {job.target.url} raised:\n{value}"))


def _crashed(job: _Job, reason: str, detail: str) -> None:
    if not job.future.done():
        url = job.target.url
        message = f"extraction of {url} failed: {reason} ({detail})"
        job.future.set_exception(ExtractError(message, url=url, reason=reason))


def _hand_back(job: _Job) -> None:
    """No child left to take ``job``: its caller fetches it (``fetch`` returns None)."""
    if not job.future.done():
        job.future.set_result(None)


def _widen(pipe: Any) -> None:
    """Give a pipe a 1 MB buffer where the system allows (Linux), else leave it."""
    size_flag = getattr(fcntl, "F_SETPIPE_SZ", None)
    if pipe is None or size_flag is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(pipe.fileno(), size_flag, _PIPE_BYTES)


def _frame(body: bytes) -> bytes:
    return _HEADER.pack(len(body)) + body


async def _frames(stream: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """The whole frames of ``stream`` until its end, every frame that has arrived taken at each
    read (not two reads a frame)."""
    pending = bytearray()
    while chunk := await stream.read(_PIPE_BYTES):
        pending += chunk
        start = 0
        while len(pending) - start >= _HEADER.size:
            (size,) = _HEADER.unpack_from(pending, start)
            end = start + _HEADER.size + size
            if end > len(pending):
                break
            yield bytes(pending[start + _HEADER.size : end])
            start = end
        del pending[:start]


# -- the child ---------------------------------------------------------------------------------
class _Answers:
    """The child's side of its stdout: a frame per message, the frames of one pass of the event
    loop written together; ``flush`` at once before the loop blocks (extraction)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._frames: list[bytes] = []

    def ready(self) -> None:
        self._frames.append(_frame(_READY))
        self.flush()

    def send(self, number: int, kind: int, value: Any) -> None:
        try:
            body = pickle.dumps((number, kind, value), _PROTOCOL)
        except Exception:  # noqa: BLE001 - what cannot be pickled is a bug; the job is answered
            body = pickle.dumps((number, _RAISED, traceback.format_exc()), _PROTOCOL)
        if not self._frames:
            asyncio.get_running_loop().call_soon(self.flush)
        self._frames.append(_frame(body))

    def flush(self) -> None:
        frames, self._frames = self._frames, []
        if not frames:
            return
        try:
            self._stream.write(b"".join(frames))
            self._stream.flush()
        except BrokenPipeError:  # the crawl is gone (killed): nobody to answer, nothing to keep
            os._exit(0)


class _Slots:
    """The child's request slots: so many at once, so many to one host; a host's pages wait
    out a Retry-After the child received for it (a page the crawl started ahead waits here)."""

    def __init__(self, total: int, per_host: int) -> None:
        self._total = asyncio.Semaphore(total)
        self._per_host = per_host
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._blocked: dict[str, float] = {}

    def block(self, host: str, seconds: float) -> None:
        """Start no request to ``host`` for ``seconds``."""
        until = asyncio.get_running_loop().time() + seconds
        self._blocked[host] = max(self._blocked.get(host, until), until)

    def _blocked_for(self, host: str) -> float:
        until = self._blocked.get(host)  # None but after a Retry-After: asked twice a request
        return 0.0 if until is None else until - asyncio.get_running_loop().time()

    @contextlib.asynccontextmanager
    async def request(self, host: str) -> AsyncIterator[None]:
        """Hold a slot for one request to ``host`` (waiting for one, and out any block)."""
        own = self._hosts.get(host)
        if own is None:
            own = self._hosts[host] = asyncio.Semaphore(self._per_host)
        while True:
            while (wait := self._blocked_for(host)) > 0:
                await asyncio.sleep(wait)
            async with own, self._total:
                if self._blocked_for(host) > 0:
                    continue  # blocked while it waited: wait that out without the slots
                yield
                return


async def _work(
    client: Any,
    job: tuple[int, Target, Validators | None, str],
    sites: dict[str, SiteConfig],
    settings: CrawlSettings,
    canonical: Callable[[str], str],
    answers: _Answers,
    slots: _Slots,
) -> None:
    """One page: fetched once it has a request slot, then (unless not modified) extracted, and
    answered."""
    number, target, validators, host = job

    def on_retry_after(seconds: float) -> None:
        slots.block(host, seconds)
        answers.send(number, _RETRY_AFTER, seconds)

    try:
        site = sites[target.site]
        async with slots.request(host):
            fetched = await fetch_page(
                client,
                target,
                settings=settings,
                scope=lambda url: out_of_scope_reason(canonical(url), site),
                validators=validators,
                on_retry_after=on_retry_after,
            )
        extraction = None
        if not fetched.not_modified:
            answers.send(number, _EXTRACTING, None)
            answers.flush()  # the crawl times the parser from now
            extraction = extract_here(fetched, target, site)
            fetched = replace(fetched, text="")  # the crawl needs the record, not the page
    except (FetchError, PageSkipped) as exc:
        answers.send(number, _FAILED, exc)
    except Exception:  # noqa: BLE001 - the crawl counts it; this process goes on
        answers.send(number, _RAISED, traceback.format_exc())
    else:
        answers.send(number, _DONE, (fetched, extraction))


async def _serve(pages: IO[bytes], answers: _Answers) -> None:
    """Read the sites and settings, say ready, then take one job per frame until end of file;
    answer each when done."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_PIPE_BYTES)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pages)
    frames = _frames(reader)
    first = await anext(frames, None)
    if first is None:
        return
    site_list, settings, (total, per_host) = pickle.loads(first)
    sites = {s.name: s for s in site_list}
    slots = _Slots(total, per_host)
    canonical = partial(canonicalize_url, strip_params=settings.strip_params)  # for redirects
    tasks: set[asyncio.Task[None]] = set()
    async with make_client(settings) as client:
        answers.ready()
        async for body in frames:
            job = pickle.loads(body)
            task = asyncio.create_task(
                _work(client, job, sites, settings, canonical, answers, slots)
            )
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        # End of file: the crawl closes our stdin once every page it sent is answered, or it
        # died (kill -9). What is still in flight is nobody's: no request goes on without it.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: list[str]) -> int:
    """The child's entry point: the sites and crawl settings in the first frame on stdin, then
    one job per frame; its answers on stdout, each job's as it is done. Exits at end of file."""
    logging.basicConfig(
        level=int(argv[0]) if argv else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    stream = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    _widen(stream)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print must not break a frame
    heap.settle()
    asyncio.run(_serve(sys.stdin.buffer, _Answers(stream)))
    return 0


if __name__ == "__main__":  # pragma: no cover - run as `python -c` by PageWorkers
    raise SystemExit(main(sys.argv[1:]))
