"""Extract and normalize stages beside the crawl: child processes that turn pages into records.

Parsing a heavy page and reading its fields costs about 2 ms of Python, as much as fetching,
storing and queueing it together; in the crawl's own interpreter it runs on the core that also
drives the event loop, so the crawl runs at the speed of one core while the second idles between
the index process's batches. ``ExtractWorkers`` sends each fetched page (its text, URL, target and
site name) to a child process and awaits the page and record it sends back; the event loop fetches
and stores other pages meanwhile.

A small crawl never pays for a process: the children start once the crawl has fetched
``START_AFTER`` pages, and pages are extracted in the crawl's process until one answers.
``crawl.extract_workers`` 0 keeps all extraction in the crawl's process.

The children are ``python`` processes speaking length-prefixed pickles over their stdin and
stdout, not a ``ProcessPoolExecutor``: a pool's workers outlive a crawl killed with ``kill -9``
(they wait on a queue they hold both ends of), where these read end-of-file and exit. A child
answers in order, one page at a time, so the page it was on when it died (a parser crash) or
overran ``crawl.extract_timeout`` (a page that takes the parser forever) is known: that page
fails, counted as ``extract_crashed`` or ``extract_timeout``, and the pages queued behind it
go to a new child. Each child runs in its own process group: Ctrl-C at a terminal is the
crawl's to handle, and in-flight pages still get extracted.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import pickle
import struct
import sys
import traceback
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from pipeline.config import SiteConfig
from pipeline.errors import ExtractError
from pipeline.extract import extract_page
from pipeline.models import ArticleRecord, Extracted, Fetched, Target, TopicPageRecord
from pipeline.normalize import normalize

__all__ = [
    "START_AFTER",
    "ExtractWorkers",
    "Extraction",
    "WorkerError",
    "extract_here",
    "worker_count",
]

logger = logging.getLogger(__name__)

#: Pages the crawl extracts itself before it starts the children.
START_AFTER = 64
#: The child's program (``-m pipeline.workers`` would import this module twice).
_CHILD = "import sys; from pipeline.workers import main; sys.exit(main(sys.argv[1:]))"
_HEADER = struct.Struct("!I")
_PROTOCOL = pickle.HIGHEST_PROTOCOL
_READY = b"ready"
_CLOSE_SECONDS = 5.0  # a child given this long to exit after its stdin closes, then killed
_PIPE_BYTES = 1 << 20  # a page (~50 KB) goes down the pipe in one write, not 64 KB slices

Extraction = tuple[Extracted, ArticleRecord | TopicPageRecord | None]
"""What a page becomes: the extracted page and its record (None for pages that are neither)."""


def worker_count(setting: int | None) -> int:
    """``crawl.extract_workers`` as a number: by default 1 when this process may use two or
    more cores (the crawl loop keeps one busy), else 0."""
    if setting is not None:
        return setting
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 1 if (cores or 1) > 1 else 0


class WorkerError(Exception):
    """Extraction raised in a child; the message holds the child's traceback."""


def extract_here(fetched: Fetched, target: Target, site: SiteConfig) -> Extraction:
    """Extract and normalize a page in this process."""
    return _extract(fetched.text, fetched.url, target, fetched.fetched_at, site)


def _extract(
    text: str, url: str, target: Target, fetched_at: datetime, site: SiteConfig
) -> Extraction:
    page = extract_page(text, url, selectors=site.selectors)
    return page, normalize(page, target, fetched_at=fetched_at, site=site)


@dataclass(slots=True)
class _Job:
    frame: bytes
    url: str
    future: asyncio.Future[Extraction]


@dataclass(slots=True)
class _Child:
    process: asyncio.subprocess.Process
    jobs: deque[_Job] = field(default_factory=deque)  # sent and not answered, in order
    ready: bool = False
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # ready, or dead
    timed_out: bool = False
    reader: asyncio.Task[None] | None = None
    watchdog: asyncio.TimerHandle | None = None


class ExtractWorkers:
    """The extraction children of one crawl (``Crawler`` drives it inside its event loop).

    ``extract`` is the one call: it counts pages, starts the children after ``START_AFTER`` of
    them, and extracts in this process until a child is ready. ``close`` ends the children.
    """

    def __init__(self, sites: Sequence[SiteConfig], *, workers: int, timeout: float) -> None:
        self._sites = {s.name: s for s in sites}
        self._wanted = workers
        self._timeout = timeout
        self._children: list[_Child] = []
        self._readers: set[asyncio.Task[None]] = set()  # until each has settled its child
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

    async def prepare(self) -> None:
        """With ``START_AFTER`` 0, start the children now and wait until they can take pages."""
        if START_AFTER == 0 and self._can_start and self._starting is None:
            self._starting = asyncio.create_task(self._start_all())
            await self._starting
            for child in list(self._children):
                await child.settled.wait()

    async def extract(self, fetched: Fetched, target: Target) -> Extraction:
        """The page and record of a fetched page, from a child when one is ready.

        Raises:
            ExtractError: the child died on this page (``extract_crashed``) or took longer
                than ``crawl.extract_timeout`` (``extract_timeout``).
            WorkerError: extraction raised in the child (a bug: the crawl counts an error).
        """
        self._pages += 1
        if self._pages > START_AFTER and self._starting is None and self._can_start:
            self._starting = asyncio.create_task(self._start_all())
        child = self._least_busy()
        if child is None:
            return extract_here(fetched, target, self._sites[target.site])
        payload = (fetched.text, fetched.url, target, fetched.fetched_at)
        future = asyncio.get_running_loop().create_future()
        job = _Job(pickle.dumps(payload, _PROTOCOL), fetched.url, future)
        self._send(child, job)
        return await job.future

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
            logger.warning("cannot extract beside the crawl (%s); extracting in the crawl", exc)
            self._closed = True
            return None
        child = _Child(process)
        self._children.append(child)
        self._started += 1
        assert process.stdin is not None
        _widen(process.stdin.transport.get_extra_info("pipe"))
        process.stdin.write(_frame(pickle.dumps(list(self._sites.values()), _PROTOCOL)))
        child.reader = asyncio.create_task(self._read(child))
        self._readers.add(child.reader)
        child.reader.add_done_callback(self._readers.discard)
        return child

    def _send(self, child: _Child, job: _Job) -> None:
        child.jobs.append(job)
        if len(child.jobs) == 1:
            self._watch(child)
        stdin = child.process.stdin
        assert stdin is not None
        stdin.write(_frame(job.frame))  # the pipe's buffer grows; the child reads in order

    def _watch(self, child: _Child) -> None:
        """Time the job at the head of the child's queue: the one it is working on."""
        if child.watchdog is not None:
            child.watchdog.cancel()
            child.watchdog = None
        if child.jobs:
            head = child.jobs[0]
            loop = asyncio.get_running_loop()
            child.watchdog = loop.call_later(self._timeout, self._overran, child, head)

    def _overran(self, child: _Child, job: _Job) -> None:
        if child.jobs and child.jobs[0] is job and child.process.returncode is None:
            logger.warning(
                "extraction of %s took over %s s; restarting its worker", job.url, self._timeout
            )
            child.timed_out = True
            child.process.kill()

    async def _read(self, child: _Child) -> None:
        """Hand each answer to the job it belongs to; replace the child when it dies."""
        stdout = child.process.stdout
        assert stdout is not None
        try:
            while True:
                size = _HEADER.unpack(await stdout.readexactly(_HEADER.size))[0]
                body = await stdout.readexactly(size)
                if not child.ready:
                    child.ready = body == _READY
                    child.settled.set()
                    continue
                job = child.jobs.popleft()
                self._watch(child)
                self._answered += 1
                if not job.future.done():
                    _settle(job, pickle.loads(body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        await self._died(child)

    async def _died(self, child: _Child) -> None:
        self._children.remove(child)  # no new page goes to it
        code = await child.process.wait()
        child.settled.set()
        if child.watchdog is not None:
            child.watchdog.cancel()
        jobs = list(child.jobs)
        child.jobs.clear()
        if self._closed and not jobs:
            return
        if not child.ready:  # it could not even start: this crawl extracts in its own process
            logger.warning(
                "an extraction worker failed to start (exit status %s); extracting in the "
                "crawl's process",
                code,
            )
            self._closed = True
            for job in jobs:
                _run_here(job, self._sites)
            return
        if jobs:  # the page it was on: the one that crashed it or overran
            head = jobs.pop(0)
            reason = "extract_timeout" if child.timed_out else "extract_crashed"
            detail = f"over {self._timeout:g} s" if child.timed_out else f"exit status {code}"
            message = f"extraction of {head.url} failed: {reason} ({detail})"
            head.future.set_exception(ExtractError(message, url=head.url, reason=reason))
        self.restarts += 1
        replacement = None if self._closed else await self._start_child()
        for job in jobs:  # queued behind it: not at fault
            if replacement is None:
                _run_here(job, self._sites)
            else:
                self._send(replacement, job)

    async def close(self) -> None:
        """End the children: each finishes what it was sent, then exits (one killed after
        ``_CLOSE_SECONDS`` leaves its pages to ``_died``)."""
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


def _settle(job: _Job, answer: Any) -> None:
    if isinstance(answer, str):
        job.future.set_exception(WorkerError(f"extraction of {job.url} raised:\n{answer}"))
    else:
        job.future.set_result(answer)


def _run_here(job: _Job, sites: dict[str, SiteConfig]) -> None:
    """Extract a job's page in this process (no worker left to take it), as a worker would."""
    if not job.future.done():
        _settle(job, _work(job.frame, sites))


def _widen(pipe: Any) -> None:
    """Give a pipe a 1 MB buffer where the system allows (Linux), else leave it."""
    size_flag = getattr(fcntl, "F_SETPIPE_SZ", None)
    if pipe is None or size_flag is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(pipe.fileno(), size_flag, _PIPE_BYTES)


def _frame(body: bytes) -> bytes:
    return _HEADER.pack(len(body)) + body


def _read_frame(stream: IO[bytes]) -> bytes | None:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    size = _HEADER.unpack(header)[0]
    body = stream.read(size)
    return body if len(body) == size else None


def _work(frame: bytes, sites: dict[str, SiteConfig]) -> Any:
    """One page's answer: ``(page, record)``, or the traceback text when extraction raised."""
    text, url, target, fetched_at = pickle.loads(frame)
    try:
        return _extract(text, url, target, fetched_at, sites[target.site])
    except Exception:  # noqa: BLE001 - the crawl counts it; this process goes on
        return traceback.format_exc()


def main(argv: list[str]) -> int:
    """The child's entry point: site configs in the first frame on stdin, then one page per
    frame; one answer frame per page on stdout, in order. Exits at end of file."""
    logging.basicConfig(
        level=int(argv[0]) if argv else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    _widen(answers)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print must not break a frame
    pages = sys.stdin.buffer
    first = _read_frame(pages)
    if first is None:
        return 0
    sites = {s.name: s for s in pickle.loads(first)}
    try:
        answers.write(_frame(_READY))
        answers.flush()
        while (frame := _read_frame(pages)) is not None:
            answers.write(_frame(pickle.dumps(_work(frame, sites), _PROTOCOL)))
            answers.flush()
    except BrokenPipeError:  # the crawl is gone: nobody to answer
        os.dup2(os.open(os.devnull, os.O_WRONLY), answers.fileno())
    return 0


if __name__ == "__main__":  # pragma: no cover - run as `python -c` by ExtractWorkers
    raise SystemExit(main(sys.argv[1:]))
