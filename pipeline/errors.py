"""The whole crawldex exception tree.

Every error crawldex raises on purpose is a ``PipelineError``; the CLI turns it into one line of
text (no traceback unless ``--debug``)::

    PipelineError          base class: `except PipelineError` catches everything of ours
    ├── ConfigError        names the file and key
    ├── FetchError         .url; wraps httpx2 errors
    │   ├── FetchTimeout   connect/read timeout or the whole-response deadline
    │   ├── BadStatus      .status, .retry_after: an HTTP status we do not store (4xx/5xx)
    │   └── TooLarge       the body passed crawl.max_bytes (after decompression too)
    ├── ExtractError       .url, .reason; the page could not be parsed (its worker crashed)
    ├── PageSkipped        .url, .reason: robots, out_of_scope, not_html, ... (control flow)
    ├── StoreError         the SQLite store is unusable
    │   └── CrawlLocked    another crawl holds the data directory (a scheduled run skips)
    ├── SearchIndexError   wraps whoosh errors (not IndexError, not whoosh's IndexingError)
    │   └── QuerySyntaxError  a search query that cannot be parsed; .position, .hint
    └── ExportError        names the record id and field that broke the contract
"""

from __future__ import annotations

__all__ = [
    "BadStatus",
    "ConfigError",
    "CrawlLocked",
    "ExportError",
    "ExtractError",
    "FetchError",
    "FetchTimeout",
    "PageSkipped",
    "PipelineError",
    "QuerySyntaxError",
    "SearchIndexError",
    "StoreError",
    "TooLarge",
]


class PipelineError(Exception):
    """Base class of every error crawldex raises on purpose.

    Each pickles with its attributes (a fetch worker's errors reach the crawl as pickles):
    ``Exception``'s own pickling calls the class with ``args`` alone, which the keyword-only
    arguments below refuse.
    """

    def __reduce__(self) -> tuple[object, ...]:
        return _restore, (type(self), self.args, self.__dict__)


def _restore(
    cls: type[PipelineError], args: tuple[object, ...], state: dict[str, object]
) -> PipelineError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ConfigError(PipelineError):
    """The configuration file or a setting is invalid.

    Attributes:
        path: the config file, when one was read.
        key: the dotted key at fault (``crawl.delay``), when one is known.
    """

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        self.path = path
        self.key = key
        super().__init__(message)


class FetchError(PipelineError):
    """A page could not be fetched. ``reason`` is a short code counted in run reports."""

    reason = "fetch_error"

    def __init__(
        self, message: str, *, url: str, transient: bool = False, reason: str | None = None
    ) -> None:
        self.url = url
        self.transient = transient
        if reason is not None:
            self.reason = reason
        super().__init__(message)


class FetchTimeout(FetchError):
    """Connect, read or whole-response deadline passed."""

    reason = "timeout"

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message, url=url, transient=True)


class BadStatus(FetchError):
    """The server answered with a status we do not store."""

    reason = "bad_status"

    def __init__(
        self, message: str, *, url: str, status: int, retry_after: float | None = None
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        transient = status >= 500 or status == 429
        super().__init__(message, url=url, transient=transient)


class TooLarge(FetchError):
    """The body is larger than ``crawl.max_bytes``."""

    reason = "too_large"


class ExtractError(PipelineError):
    """A fetched page could not be turned into fields. ``reason`` is a short code counted in
    run reports (``extract_crashed``, ``extract_timeout``: see ``pipeline.workers``)."""

    def __init__(self, message: str, *, url: str, reason: str = "extract_failed") -> None:
        self.url = url
        self.reason = reason
        super().__init__(message)


class PageSkipped(PipelineError):
    """A page deliberately not fetched or not stored: control flow, not failure.

    ``reason`` is a short code (``robots``, ``out_of_scope``, ``not_html``, ``duplicate``, ...)
    counted in the run report.
    """

    def __init__(self, reason: str, *, url: str, detail: str = "") -> None:
        self.reason = reason
        self.url = url
        self.detail = detail
        super().__init__(f"skipped {url}: {reason}" + (f" ({detail})" if detail else ""))


class StoreError(PipelineError):
    """The record store cannot be opened or written."""


class CrawlLocked(StoreError):
    """Another crawldex process holds the data directory's crawl lock."""


class SearchIndexError(PipelineError):
    """The whoosh index cannot be opened, written or searched."""


class QuerySyntaxError(SearchIndexError):
    """A search query that cannot be parsed.

    Attributes:
        position: 0-based character offset of the problem in the query, when known.
        hint: what to write instead.
    """

    def __init__(self, message: str, *, position: int | None = None, hint: str = "") -> None:
        self.position = position
        self.hint = hint
        super().__init__(message)


class ExportError(PipelineError):
    """A record does not fit the export contract, or the export file cannot be written."""

    def __init__(
        self, message: str, *, record_id: str | None = None, field: str | None = None
    ) -> None:
        self.record_id = record_id
        self.field = field
        super().__init__(message)
