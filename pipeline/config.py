"""Settings: every default crawldex has lives here, each with a description.

Precedence, lowest to highest (written down once, here, and tested):
built-in defaults < the YAML file < ``CRAWLDEX_<SECTION>__<KEY>`` environment variables < CLI flags.

Relative paths in the file (``storage.dir``) are relative to the file's folder, so a config works
from any working directory; without a file they are relative to the working directory.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "CrawlSettings",
    "DriftSettings",
    "ExportSettings",
    "IndexSettings",
    "ScheduleJob",
    "ScheduleSettings",
    "Settings",
    "SiteConfig",
    "StorageSettings",
    "duration_seconds",
    "load_settings",
]

ENV_PREFIX = "CRAWLDEX_"
DEFAULT_STRIP_PARAMS = (
    "utm_*",
    "fbclid",
    "gclid",
    "dclid",
    "gbraid",
    "wbraid",
    "msclkid",
    "mc_cid",
    "mc_eid",
    "_ga",
    "_gl",
    "yclid",
    "igshid",
    "ref_src",
    "spm",
    # session ids: every visit gets a new one, so without stripping a site never ends
    "sid",
    "sessionid",
    "session_id",
    "phpsessid",
    "jsessionid",
    "aspsessionid*",
    "cfid",
    "cftoken",
)
DEFAULT_USER_AGENT = "crawldex/0.1 (+https://github.com/crawldex/crawldex; polite content indexer)"


_EVERY = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(value: str) -> int:
    """Seconds of a duration such as ``30m``, ``6h`` or ``7d`` (validated settings only)."""
    match = _EVERY.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a duration like '30m', '6h' or '7d'")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)


class StorageSettings(_Section):
    """Where crawldex keeps its data."""

    dir: Path = Field(
        Path("crawldex-data"),
        description="Data directory: the SQLite store, the search index and the exports.",
    )


class CrawlSettings(_Section):
    """How the crawler fetches."""

    user_agent: str = Field(
        DEFAULT_USER_AGENT, description="User-Agent header sent, and the robots.txt agent name."
    )
    concurrency: int = Field(
        8, ge=1, le=512, description="Requests in flight at once, over all hosts."
    )
    per_host_concurrency: int = Field(
        2, ge=1, le=64, description="Requests in flight at once to one host."
    )
    delay: float = Field(
        1.0,
        ge=0,
        le=3600,
        description="Minimum seconds between request starts to one host "
        "(robots.txt Crawl-delay may raise it).",
    )
    transport: Literal["aiohttp", "httpx2"] = Field(
        "aiohttp",
        description="What carries the httpx2 client's requests: aiohttp's connection pool "
        "(about 40 % less CPU per request) or httpx2's own.",
    )
    timeout: float = Field(
        10.0, gt=0, le=600, description="Seconds allowed to connect, and between bytes read."
    )
    deadline: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Seconds allowed for a whole response, however it trickles.",
    )
    retries: int = Field(
        2,
        ge=0,
        le=10,
        description="Extra attempts for transient failures (connect errors, timeouts, 429, 5xx).",
    )
    backoff: float = Field(
        1.0,
        ge=0,
        le=600,
        description="Base seconds of the exponential backoff between attempts (with jitter).",
    )
    max_pages: int = Field(10_000, ge=1, description="Pages fetched at most in one run.")
    max_bytes: int = Field(
        5_000_000, ge=1024, description="Largest response body kept, in bytes, after decompression."
    )
    sitemap_max_bytes: int = Field(
        52_428_800,
        ge=1024,
        description="Largest sitemap read, in bytes, after decompression (the sitemap protocol's "
        "limit, 50 MiB); it is read as a stream and its URLs wait on disk.",
    )
    max_depth: int = Field(
        50, ge=0, description="Link hops from a start URL beyond which links are not followed."
    )
    max_pages_per_site: int | None = Field(
        None,
        ge=1,
        description="Pages fetched at most from one site in one run (none: only max_pages); "
        "the next run continues the pass.",
    )
    max_query_variants: int = Field(
        100,
        ge=1,
        description="Distinct query strings followed per URL path in one run (a crawl trap bound).",
    )
    max_listing_pages: int = Field(
        1000,
        ge=1,
        description="Highest pagination page number followed (/page/N, ?page=N): a crawl trap "
        "bound for endless calendars and listings.",
    )
    max_redirects: int = Field(
        5, ge=0, le=30, description="Redirect hops followed for one request."
    )
    use_sitemaps: bool = Field(
        True,
        description="Read the sitemaps robots.txt lists when a pass starts: their URLs are "
        "queued newest first; those whose lastmod is not newer than our copy are not refetched.",
    )
    extract_workers: int | None = Field(
        None,
        ge=0,
        le=64,
        description="Processes that fetch, extract and normalize pages beside the crawl once it "
        "expects 64 pages or more (other cores); none: 1 on a machine with 2 or more cores, "
        "else 0; 0: fetch and extract in the crawl's own process.",
    )
    extract_timeout: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Seconds a worker may spend extracting one page; past it the worker is "
        "restarted and the page counted as failed (extract_timeout).",
    )
    respect_robots: bool = Field(
        True, description="Obey robots.txt (disallow rules and Crawl-delay)."
    )
    strip_params: list[str] = Field(
        default_factory=lambda: list(DEFAULT_STRIP_PARAMS),
        description="Query parameters removed from every URL (globs: tracking ids like utm_*).",
    )
    # Recrawl policy (pipeline/recrawl.py) -----------------------------------------------------
    full_walk_every: str = Field(
        "7d",
        description="How often every page of a topic listing is walked again; in between a walk "
        "stops at the first listing page with nothing new or changed ('0s': always walk all).",
    )
    refetch_min: str = Field(
        "1h",
        description="Shortest wait before an article page is fetched again; its interval "
        "starts here and drops back here after the page changed ('0s': always refetch).",
    )
    refetch_max: str = Field(
        "30d",
        description="Longest wait before an article page is fetched again; the interval "
        "doubles up to this while the page stays unchanged.",
    )

    @field_validator("full_walk_every", "refetch_min", "refetch_max")
    @classmethod
    def _is_duration(cls, value: str) -> str:
        if not _EVERY.match(value):
            raise ValueError("use a number and a unit s, m, h or d, like '1h' or '7d'")
        return value

    @model_validator(mode="after")
    def _refetch_bounds_ordered(self) -> CrawlSettings:
        if duration_seconds(self.refetch_min) > duration_seconds(self.refetch_max):
            raise ValueError(
                f"crawl.refetch_min ({self.refetch_min}) is longer than "
                f"crawl.refetch_max ({self.refetch_max})"
            )
        return self


class IndexSettings(_Section):
    """The full-text search index."""

    batch_size: int = Field(
        2000,
        ge=1,
        description="Records written to the index per commit; the index lags a crawl by up to "
        "about this many. Fewer, larger commits cost less CPU per record (fewer segments to "
        "write and merge).",
    )
    during_crawl: bool = Field(
        True,
        description="Index in a second process while the crawl runs, once a batch of changes "
        "waits (uses a second core); false indexes after the crawl.",
    )
    procs: int = Field(
        1,
        ge=1,
        le=64,
        description="Processes that build the index in a rebuild (`crawldex reindex`); "
        "more than 1 analyzes documents on several cores, each process writing a segment.",
    )
    limit_mb: int = Field(
        64,
        ge=8,
        description="Memory (MB, whoosh's estimate) each index-writer process may fill with "
        "postings before it spills them to disk; bounds the memory of a rebuild and of a "
        "crawl's index updates at any size.",
    )


FeedFormat = Literal["jsonl", "csv", "parquet"]


class ExportSettings(_Section):
    """Record exports for other services."""

    dir: Path | None = Field(None, description="Where exports go (default: <storage.dir>/exports).")
    feed: bool = Field(
        True,
        description="After every run, export the records changed since the previous run "
        "(the change feed) with a JSON manifest.",
    )
    feed_formats: list[FeedFormat] = Field(
        default_factory=lambda: list[FeedFormat](["jsonl"]),
        min_length=1,
        description="Formats of the change feed's files (jsonl, csv, parquet).",
    )


class ScheduleJob(_Section):
    """One scheduled crawl: a site and either a cron expression or an interval."""

    site: str = Field(description="Name of the configured site to crawl.")
    cron: str | None = Field(
        None, description="Five-field crontab expression in UTC, e.g. '0 */6 * * *'."
    )
    every: str | None = Field(None, description="Interval: a number and s, m, h or d, e.g. '6h'.")
    jitter: float = Field(
        0.0, ge=0, description="Up to this many seconds of random delay per run (spreads load)."
    )

    @field_validator("every")
    @classmethod
    def _every_is_interval(cls, value: str | None) -> str | None:
        if value is not None and not _EVERY.match(value):
            raise ValueError("use a number and a unit s, m, h or d, like '30m' or '6h'")
        return value

    @field_validator("cron")
    @classmethod
    def _cron_has_five_fields(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:
            raise ValueError("use five fields: minute hour day month weekday, like '0 */6 * * *'")
        return value

    @model_validator(mode="after")
    def _one_trigger(self) -> ScheduleJob:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of `cron` or `every`")
        return self

    @property
    def every_seconds(self) -> int | None:
        """The interval in seconds (None for a cron job)."""
        match = _EVERY.match(self.every or "")
        return int(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else None

    @property
    def spec(self) -> str:
        """The trigger as written, e.g. ``cron 0 */6 * * *`` or ``every 6h``."""
        return f"cron {self.cron}" if self.cron else f"every {self.every}"


class ScheduleSettings(_Section):
    """``crawldex schedule``: which crawls run when (this config is the source of truth)."""

    jobs: list[ScheduleJob] = Field(
        default_factory=list, description="Scheduled crawls: {site, cron | every, jitter}."
    )
    misfire_grace_time: int = Field(
        3600,
        ge=1,
        description="Seconds a run may start late (the machine was busy or asleep) and still run.",
    )
    stop_timeout: float = Field(
        30.0, gt=0, description="Seconds to wait for in-flight pages after SIGTERM before exiting."
    )


class DriftSettings(_Section):
    """Drift alarms: a sharp drop in how many records have a field means extraction broke."""

    window: int = Field(5, ge=1, description="Recent runs whose median is the baseline.")
    max_drop: float = Field(
        0.3, gt=0, le=1, description="Warn when a field's share drops more than this below it."
    )
    min_records: int = Field(
        5, ge=1, description="Runs that saw fewer articles of a site are not compared."
    )


class SiteConfig(_Section):
    """One site to crawl."""

    name: str = Field(description="Short unique name, used in records and --site.")
    start_urls: list[str] = Field(min_length=1, description="Where the crawl of this site starts.")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts the crawl may visit (default: the start URLs' hosts).",
    )
    include: list[str] = Field(
        default_factory=list,
        description="URL regexes; when given, only matching URLs are followed.",
    )
    exclude: list[str] = Field(default_factory=list, description="URL regexes never followed.")
    timezone: str = Field(
        "UTC", description="IANA timezone of dates the site writes without an offset."
    )
    day_first: bool = Field(
        False,
        description="Read numeric dates such as 01/11/2025 as day/month (1 November), "
        "not month/day; a date only one order makes valid is read that way either way.",
    )
    selectors: dict[str, str] = Field(
        default_factory=dict,
        description="CSS selector overrides per field "
        "(title, published, author, comments, summary, text, card, ...).",
    )

    @field_validator("name")
    @classmethod
    def _name_is_slug(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
            raise ValueError("use letters, digits, '-', '_' or '.' (it names files and filters)")
        return value

    @field_validator("start_urls")
    @classmethod
    def _urls_are_http(cls, value: list[str]) -> list[str]:
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{url!r} is not an absolute http(s) URL")
        return value

    @field_validator("include", "exclude")
    @classmethod
    def _regexes_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regex: {exc}") from exc
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone_exists(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown timezone {value!r}; use an IANA name like 'Europe/London'"
            ) from exc
        return value

    @property
    def hosts(self) -> frozenset[str]:
        """Hosts in scope: ``allowed_hosts``, else the start URLs' hosts."""
        return _hosts(tuple(self.allowed_hosts), tuple(self.start_urls))


@lru_cache(maxsize=256)
def _hosts(allowed_hosts: tuple[str, ...], start_urls: tuple[str, ...]) -> frozenset[str]:
    """``SiteConfig.hosts``, worked out once: a crawl asks it for every link it weighs."""
    if allowed_hosts:
        return frozenset(h.lower() for h in allowed_hosts)
    return frozenset((urlsplit(u).hostname or "").lower() for u in start_urls)


class Settings(_Section):
    """All of crawldex's settings; one sub-model per stage."""

    storage: StorageSettings = StorageSettings()
    crawl: CrawlSettings = CrawlSettings()
    index: IndexSettings = IndexSettings()
    export: ExportSettings = ExportSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    drift: DriftSettings = DriftSettings()
    sites: list[SiteConfig] = Field(default_factory=list, description="The sites to crawl.")

    @model_validator(mode="after")
    def _site_names_unique(self) -> Settings:
        names = [s.name for s in self.sites]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"site names must be unique; repeated: {', '.join(dupes)}")
        unknown = sorted({j.site for j in self.schedule.jobs} - set(names))
        if unknown:
            raise ValueError(
                f"schedule.jobs names unknown site(s) {', '.join(unknown)}; "
                f"configured sites: {', '.join(names) or '(none)'}"
            )
        return self

    @property
    def export_dir(self) -> Path:
        """Folder of exports: ``export.dir`` or ``<storage.dir>/exports``."""
        return self.export.dir or self.storage.dir / "exports"

    def site(self, name: str) -> SiteConfig:
        """The site called ``name``.

        Raises:
            ConfigError: no site has that name.
        """
        for site in self.sites:
            if site.name == name:
                return site
        known = ", ".join(s.name for s in self.sites) or "(none configured)"
        raise ConfigError(
            f"no site named {name!r} in the config; configured sites: {known}", key="sites"
        )


def load_settings(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Load and validate settings from defaults, a YAML file, the environment and CLI flags.

    Args:
        path: YAML file to read; None for built-in defaults only.
        environ: environment to read ``CRAWLDEX_SECTION__KEY`` overrides from (not read when None).
        overrides: dotted keys from CLI flags (``{"crawl.max_pages": 10}``); None is ignored.

    Returns:
        The validated settings, with relative paths resolved.

    Raises:
        ConfigError: the file is missing or unreadable, or a key or value is invalid.
    """
    data: dict[str, Any] = _read_yaml(path) if path is not None else {}
    for dotted, value in _environ_overrides(environ or {}).items():
        _set_dotted(data, dotted, value)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, dotted, value)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, path) from None
    base = path.parent if path is not None else Path.cwd()
    return _resolve_paths(settings, base)


def _read_yaml(path: Path) -> dict[str, Any]:
    """Read the YAML file as a mapping, with errors that name the file."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist; pass --config PATH or set CRAWLDEX_CONFIG",
            path=str(path),
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}", path=str(path)) from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}", path=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of sections (storage, crawl, sites, ...)",
            path=str(path),
        )
    return data


def _environ_overrides(environ: Mapping[str, str]) -> dict[str, str]:
    """``CRAWLDEX_CRAWL__DELAY=2`` -> ``{"crawl.delay": "2"}`` (not CRAWLDEX_CONFIG)."""
    found = {}
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX) and "__" in name:
            dotted = name[len(ENV_PREFIX) :].lower().replace("__", ".")
            found[dotted] = value
    return found


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for ``dotted == "a.b"``."""
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = value


def _config_error(exc: ValidationError, path: Path | None) -> ConfigError:
    """One ConfigError naming the file, the key and what is valid, for the first problem."""
    lines = [_describe_problem(err) for err in exc.errors()]
    first_key = ".".join(str(p) for p in exc.errors()[0]["loc"]) if exc.errors() else None
    where = f"{path}: " if path is not None else ""
    more = (
        f" (and {len(lines) - 1} more problem(s): {'; '.join(lines[1:])})" if len(lines) > 1 else ""
    )
    return ConfigError(f"{where}{lines[0]}{more}", path=str(path) if path else None, key=first_key)


def _describe_problem(err: Mapping[str, Any]) -> str:
    """A ValidationError entry as 'key: what is wrong; what is valid'."""
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        valid = _valid_keys(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f"; did you mean {'.'.join([*map(str, loc[:-1]), close[0]])!r}?" if close else ""
        return f"unknown key {key!r}{hint} Valid keys here: {', '.join(valid)}"
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{key}: {message} (got {err.get('input')!r})"


def _valid_keys(parent: tuple[Any, ...]) -> list[str]:
    """The field names allowed under the dotted location ``parent``."""
    model: type[BaseModel] = Settings
    for part in parent:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[str(part)].annotation
        inner: Any = (
            getattr(annotation, "__args__", (annotation,))[0]
            if str(part) in ("sites", "jobs")
            else annotation
        )
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return []
        model = inner
    return sorted(model.model_fields)


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    """Make ``storage.dir`` and ``export.dir`` absolute against ``base``."""
    storage = settings.storage.model_copy(update={"dir": (base / settings.storage.dir).resolve()})
    export_dir = settings.export.dir
    export = settings.export.model_copy(
        update={"dir": (base / export_dir).resolve() if export_dir is not None else None}
    )
    return settings.model_copy(update={"storage": storage, "export": export})
