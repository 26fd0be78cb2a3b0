"""Normalize stage: turn an ``Extracted`` page (the page's own strings) into a typed record.

    extract --Extracted--> normalize --TopicPageRecord | ArticleRecord | None--> store

Pure functions, no HTML parsing: dates become ISO 8601 strings, comment counts ints, text clean
Unicode paragraphs. Every parser here returns None for a value it cannot read with confidence,
never a guess: a bare "9" is not a date, "Comments are closed" is not a count.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
import unicodedata
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import timezone as dt_timezone
from urllib.parse import urldefrag
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.config import SiteConfig
from pipeline.models import (
    ArticlePage,
    ArticleRecord,
    CardRecord,
    Extracted,
    ListingPage,
    Target,
    TopicPageRecord,
)

__all__ = [
    "clean_text",
    "content_hash",
    "normalize",
    "parse_count",
    "parse_date",
    "word_count",
]

logger = logging.getLogger(__name__)

EARLIEST_DATE = date(1990, 1, 1)
"""Dates before this are rejected: no web page was published then."""
FUTURE_TOLERANCE = timedelta(days=2)
"""Dates later than ``now`` plus this are rejected (time-zone slack, scheduled posts)."""
FALLBACK_LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "pt", "pl", "sv", "da", "nb", "fi")
"""Languages dateparser may try for month names the explicit parsers do not know."""
_MAX_DATE_TEXT = 80  # longer strings are sentences, not date stamps

# --- text -----------------------------------------------------------------------------------------

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\ufeff\u2060"), None)
_CONTROLS = dict.fromkeys([*range(0, 9), 11, 12, *range(14, 32), 127], " ")
_LINE_BREAKS = str.maketrans({"\r": "\n", "\x85": "\n", "\u2028": "\n", "\u2029": "\n\n"})
_ODD_CHARS = {**_ZERO_WIDTH, **_LINE_BREAKS, **_CONTROLS}  # disjoint keys: one table, one pass
_HAS_ODD = re.compile("[" + re.escape("".join(map(chr, _ODD_CHARS))) + "]")
# str.translate with a dict costs a lookup per character: only run it when there is work to do.
_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);?")
_WORD = re.compile(r"\w+(?:(?:['\u2019-]|(?<=\d)[.,](?=\d))\w+)*")
_AUTHOR_PREFIX = re.compile(r"^(?:posted\s+by|written\s+by|by|author)\s*:?\s+", re.IGNORECASE)


def clean_text(text: str | None) -> str | None:
    """Clean a page string into plain Unicode paragraphs.

    Decodes leftover HTML entities, turns NBSP and other spaces into spaces, drops zero-width
    characters, collapses whitespace inside a paragraph to one space, separates paragraphs (text
    parted by a blank line) by exactly ``"\\n\\n"``, strips, and applies Unicode NFC. Curly
    quotes and dashes are kept. ``clean_text(clean_text(x)) == clean_text(x)``.

    Args:
        text: the raw string; None is allowed.

    Returns:
        The cleaned text, or None when nothing but whitespace is left.
    """
    if not text:
        return None
    result = _clean_once(text)
    for _ in range(4):  # entity decoding or NFC can reveal more to clean; settle on a fixpoint
        again = _clean_once(result)
        if again == result:
            break
        result = again
    return result or None


def _clean_once(text: str) -> str:
    """One pass of the cleaning steps of ``clean_text``."""
    text = unicodedata.normalize("NFC", text)
    while "&" in text and _ENTITY.search(text):
        decoded = html.unescape(text)
        if decoded == text:
            break
        text = decoded
    if _HAS_ODD.search(text):
        text = text.translate(_ODD_CHARS)
    paragraphs: list[str] = []
    lines: list[str] = []
    for line in [*text.split("\n"), ""]:
        words = line.split()
        if words:
            lines.extend(words)
        elif lines:
            paragraphs.append(" ".join(lines))
            lines = []
    return unicodedata.normalize("NFC", "\n\n".join(paragraphs))


def word_count(text: str | None) -> int:
    """Count the words of a text (runs of letters/digits, inner hyphens and apostrophes kept).

    Args:
        text: cleaned text or None.

    Returns:
        The number of words; 0 for None.
    """
    if not text:
        return 0
    return len(_WORD.findall(text))


# --- counts ---------------------------------------------------------------------------------------

_ZERO_PHRASES = re.compile(
    r"^(?:no\s+(?:comments?|responses?|replies)(?:\s+yet)?|leave\s+a\s+(?:comment|reply)"
    r"|be\s+the\s+first\s+to\s+comment|add\s+a\s+comment)[.!]?$"
)
_COUNT_WORDS = r"(?:comments?|responses?|replies|reply|thoughts?)"
_NUMBER = r"(?P<num>\d{1,3}(?:[,.\u202f ]\d{3})+|\d+(?:[.,]\d+)?)\s*(?P<mult>[km])?"
_COUNT = re.compile(
    rf"^(?:comments?\s*[:(]?\s*)?\(?{_NUMBER}\)?(?:\s+{_COUNT_WORDS}(?:\s+on\b.*)?)?\s*[:.]?$",
    re.ASCII | re.DOTALL,
)
_WORD_NUMBERS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5"}


def parse_count(text: str | None) -> int | None:
    """Read a comment count as a page writes it.

    ``"9"``, ``"1,234"``, ``"1.2k"``, ``"12 Comments"``, ``"1 Comment"`` give ints; ``"No
    comments"`` and ``"Leave a comment"`` give 0; ``"Comments are closed"``, ``""``, None and
    anything that is not a count give None.

    Args:
        text: the count as written on the page.

    Returns:
        The count, or None when the text states none.
    """
    if text is None:
        return None
    value = " ".join(str(text).replace("\xa0", " ").split()).lower()
    if not value or len(value) > 200:
        return None
    if _ZERO_PHRASES.match(value):
        return 0
    first, _, rest = value.partition(" ")
    if first in _WORD_NUMBERS and rest:
        value = f"{_WORD_NUMBERS[first]} {rest}"
    match = _COUNT.match(value)
    if match is None:
        return None
    return _count_value(match.group("num"), match.group("mult"))


def _count_value(number: str, multiplier: str | None) -> int | None:
    """The int of a matched count number with an optional k/m suffix."""
    if multiplier:
        try:
            scaled = float(number.replace(",", "."))
        except ValueError:
            return None
        return round(scaled * (1000 if multiplier == "k" else 1_000_000))
    digits = re.sub(r"[,.\u202f ]", "", number)
    if not re.fullmatch(r"\d{1,3}(?:[,.\u202f ]\d{3})+|\d+", number):
        return None  # "1.5" without a k is not a count
    return int(digits)


# --- dates ----------------------------------------------------------------------------------------

_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_MONTH = (
    r"(?P<mon>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = r"(?P<day>[0-9]{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>[0-9]{4})"
_TIME = (
    r"(?:\s*(?:,|at|@|-|\u2013|T)?\s*(?P<hour>[0-9]{1,2})[:.](?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:[.,][0-9]+)?)?\s*(?P<ampm>[ap]\.?\s?m\b\.?)?"
    r"(?:\s*(?P<tz>z\b|utc\b|gmt\b|ut\b|[ecmp][sd]t\b|[+-][0-9]{2}(?::?[0-9]{2})?\b))?)?"
)
_FLAGS = re.IGNORECASE | re.ASCII
_ISO = re.compile(
    r"(?<![0-9])(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"(?:[T ](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2})(?:[.,][0-9]+)?)?"
    r"\s*(?P<tz>z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?(?![0-9])",
    _FLAGS,
)
_MDY = re.compile(rf"(?<![a-z]){_MONTH}\s*,?\s*{_DAY}\s*,?\s*{_YEAR}(?![0-9]){_TIME}", _FLAGS)
_DMY = re.compile(
    rf"(?<![0-9]){_DAY}\.?\s*(?:of\s+)?{_MONTH}\s*,?\s*{_YEAR}(?![0-9]){_TIME}", _FLAGS
)
_NUMERIC = re.compile(
    r"(?<![0-9/.-])(?P<a>[0-9]{1,2})(?P<sep>[/.-])(?P<b>[0-9]{1,2})(?P=sep)"
    rf"(?P<y>[0-9]{{4}}|[0-9]{{2}}(?=\s|$))(?![0-9/.-]){_TIME}",
    _FLAGS,
)
_YMD = re.compile(
    r"(?<![0-9/.-])(?P<year>[0-9]{4})(?P<sep>[/.])(?P<month>[0-9]{1,2})(?P=sep)"
    rf"(?P<day>[0-9]{{1,2}})(?![0-9/.-]){_TIME}",
    _FLAGS,
)
_TIMESTAMP = re.compile(r"[0-9]{9,10}(?:\.[0-9]+)?", re.ASCII)
_RELATIVE = re.compile(
    r"^(?:about\s+|around\s+|over\s+)?(?P<n>[0-9]+|an?|one)\s+"
    r"(?P<unit>second|sec|minute|min|hour|hr|day|week|month|year)s?\s+ago$",
    _FLAGS,
)
_TZ_NAMES = {"z": 0, "utc": 0, "gmt": 0, "ut": 0, "est": -5, "edt": -4, "cst": -6, "cdt": -5,
             "mst": -7, "mdt": -6, "pst": -8, "pdt": -7}  # fmt: skip
_UNITS = {"sec": "seconds", "min": "minutes", "hr": "hours"}
_HAS_YEAR = re.compile(r"(?<![0-9])(?:19[89][0-9]|20[0-9]{2})(?![0-9])")
_HAS_WORD = re.compile(r"[^\W\d_]{3,}")
_NOT_DATE_WORDS = re.compile(r"comment|repl|view|like|share|read|minute|page", re.IGNORECASE)

_Parsed = datetime | date


def parse_date(
    text: str | int | None,
    *,
    timezone: str,
    now: datetime,
    day_first: bool = False,
) -> str | None:
    """Read a date as a page writes it, as ISO 8601.

    Understands ``Nov, 1 2025``, ``1 November 2025``, ``November 1, 2025``, ``01/11/2025``
    (``day_first`` decides the order when both fields could be a month), ISO 8601, RFC 2822, Unix
    timestamps, ``3 days ago``/``yesterday``/``today``, and (through dateparser, as a last resort)
    month names in a few other languages.

    Args:
        text: the date as written on the page (a Unix timestamp may be an int).
        timezone: IANA zone of the site; a time written without an offset is local to it.
        now: the fetch time (tz-aware), the base of relative dates and of the future check.
        day_first: read ``01/11/2025`` as 1 November rather than 11 January.

    Returns:
        ``YYYY-MM-DD`` when the text gives only a day; ``YYYY-MM-DDTHH:MM:SS+HH:MM`` when it gives
        a time; None when it is not a date, is before 1990 or more than two days after ``now``.
    """
    if text is None or isinstance(text, bool):
        return None
    value = " ".join(str(text).replace("\xa0", " ").split())
    if not value or len(value) > _MAX_DATE_TEXT:
        return None
    zone = _zone(timezone)
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    parsed = _parse_explicit(value, zone, now, day_first)
    if parsed is None and _worth_dateparser(value):
        parsed = _parse_with_dateparser(value, zone, day_first)
    if parsed is None or not _plausible(parsed, zone, now):
        return None
    if isinstance(parsed, datetime):
        return parsed.isoformat(timespec="seconds")
    return parsed.isoformat()


def _zone(name: str) -> tzinfo:
    """The tzinfo of an IANA name (UTC for an unknown name: config validation catches those)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        logger.warning("unknown timezone %r; reading dates as UTC", name)
        return UTC


def _parse_explicit(value: str, zone: tzinfo, now: datetime, day_first: bool) -> _Parsed | None:
    """Try the fast, unambiguous parsers in order of how specific they are."""
    if _TIMESTAMP.fullmatch(value):
        return datetime.fromtimestamp(float(value), tz=UTC)
    if value.isdigit():
        return None  # a bare number is never a date
    for pattern in (_ISO, _YMD):
        match = pattern.search(value)
        if match:
            return _from_fields(match, int(match["month"]), int(match["day"]), zone)
    textual = [m for m in (_MDY.search(value), _DMY.search(value)) if m]
    if textual:
        match = min(textual, key=lambda m: m.start())
        return _from_fields(match, _MONTHS[match["mon"][:3].lower()], int(match["day"]), zone)
    match = _NUMERIC.search(value)
    if match:
        return _from_numeric(match, zone, day_first)
    return _from_relative(value, zone, now)


def _from_numeric(match: re.Match[str], zone: tzinfo, day_first: bool) -> _Parsed | None:
    """``01/11/2025``: order by ``day_first`` unless only one order makes a valid date."""
    first, second = int(match["a"]), int(match["b"])
    year = int(match["y"])
    if len(match["y"]) == 2:
        if match["sep"] != "/":
            return None  # "01.02.03" is more often a version than a date
        year += 2000
    day, month = (first, second) if day_first else (second, first)
    if month > 12 >= day:
        day, month = month, day
    return _from_fields(match, month, day, zone, year=year)


def _from_fields(
    match: re.Match[str], month: int, day: int, zone: tzinfo, *, year: int | None = None
) -> _Parsed | None:
    """A date, or a datetime when the match has a time, from matched fields."""
    try:
        day_value = date(year if year is not None else int(match["year"]), month, day)
    except ValueError:
        return None
    if not match["hour"]:
        return day_value
    hour, minute = int(match["hour"]), int(match["minute"])
    second = min(int(match["second"] or 0), 59)
    ampm = (match.groupdict().get("ampm") or "").lower()[:1]
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm == "p" else 0)
    if hour > 23 or minute > 59:
        return None
    naive = datetime(day_value.year, day_value.month, day_value.day, hour, minute, second)
    offset = _offset(match["tz"])
    if offset is None:
        return _localize(naive, zone)
    return naive.replace(tzinfo=offset)


def _offset(tz: str | None) -> tzinfo | None:
    """The fixed offset of ``Z``, ``+01:00``, ``-0500``, ``GMT``, ``EST``...; None if absent."""
    if not tz:
        return None
    lowered = tz.lower()
    if lowered in _TZ_NAMES:
        return dt_timezone(timedelta(hours=_TZ_NAMES[lowered]))
    digits = lowered[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 14 or minutes > 59:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    return dt_timezone(-delta if lowered[0] == "-" else delta)


def _localize(naive: datetime, zone: tzinfo) -> datetime:
    """Attach the site zone, moving a time in a DST gap forward as clocks do."""
    aware = naive.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone)


def _from_relative(value: str, zone: tzinfo, now: datetime) -> _Parsed | None:
    """``today``, ``yesterday``, ``3 days ago``, ``2 hours ago`` against ``now``."""
    local_now = now.astimezone(zone)
    lowered = value.lower()
    if lowered in ("today", "just now", "now"):
        return local_now.date()
    if lowered == "yesterday":
        return local_now.date() - timedelta(days=1)
    match = _RELATIVE.match(lowered)
    if match is None:
        return None
    n = int(match["n"]) if match["n"].isdigit() else 1
    if n > 100_000:
        return None
    unit = _UNITS.get(match["unit"], match["unit"] + "s")
    if unit in ("seconds", "minutes", "hours"):
        return (local_now - timedelta(**{unit: n})).replace(microsecond=0)
    if unit in ("days", "weeks"):
        return local_now.date() - timedelta(**{unit: n})
    months = n * (12 if unit == "years" else 1)
    return _months_before(local_now.date(), months)


def _months_before(day: date, months: int) -> date | None:
    """The same day ``months`` calendar months earlier (clamped to the month's last day)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    if year < 1:
        return None
    following = date(year + (month == 11), (month + 1) % 12 + 1, 1)
    return date(year, month + 1, min(day.day, (following - timedelta(days=1)).day))


def _worth_dateparser(value: str) -> bool:
    """Only text with a plausible year and a month-like word goes to (slow) dateparser."""
    return (
        _HAS_YEAR.search(value) is not None
        and _HAS_WORD.search(value) is not None
        and _NOT_DATE_WORDS.search(value) is None
    )


def _parse_with_dateparser(value: str, zone: tzinfo, day_first: bool) -> _Parsed | None:
    """Last resort for month names in other languages; refuses incomplete dates."""
    import dateparser  # slow to import and to run: only here, behind _worth_dateparser

    settings = {
        "REQUIRE_PARTS": ["day", "month", "year"],
        "PARSERS": ["absolute-time"],
        "STRICT_PARSING": True,
        "DATE_ORDER": "DMY" if day_first else "MDY",
        "PREFER_DATES_FROM": "past",
    }
    try:
        parsed = dateparser.parse(value, languages=list(FALLBACK_LANGUAGES), settings=settings)
    except (ValueError, OverflowError, TypeError):
        return None
    if not isinstance(parsed, datetime):
        return None
    if not re.search(r"[0-9]{1,2}\s*[:h.]\s*[0-9]{2}(?![0-9])", value):
        return parsed.date()
    if parsed.tzinfo is None:
        return _localize(parsed.replace(microsecond=0), zone)
    return parsed.replace(microsecond=0)


def _plausible(parsed: _Parsed, zone: tzinfo, now: datetime) -> bool:
    """Not before 1990 and not more than two days in the future of ``now``."""
    if isinstance(parsed, datetime):
        return parsed.date() >= EARLIEST_DATE and parsed <= now + FUTURE_TOLERANCE
    return EARLIEST_DATE <= parsed <= now.astimezone(zone).date() + FUTURE_TOLERANCE


# --- records --------------------------------------------------------------------------------------


def content_hash(
    *,
    title: str | None,
    published_at: str | None,
    updated_at: str | None,
    author: str | None,
    comment_count: int | None,
    summary: str | None,
    text: str | None,
    topics: Iterable[str],
) -> str:
    """Hash the normalized fields that make an article's content, so an unchanged page hashes
    the same on every crawl.

    Returns:
        The SHA-256 hex digest of a canonical JSON of the fields.
    """
    payload = {
        "title": title,
        "published_at": published_at,
        "updated_at": updated_at,
        "author": author,
        "comment_count": comment_count,
        "summary": summary,
        "text": text,
        "topics": list(topics),
    }
    encoded = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def normalize(
    extracted: Extracted,
    target: Target,
    *,
    fetched_at: datetime,
    site: SiteConfig,
) -> TopicPageRecord | ArticleRecord | None:
    """Turn an extracted page into the record stored for it.

    Args:
        extracted: what ``extract`` read from the page.
        target: the frontier's target of the page (canonical URL, topic URL, page number).
        fetched_at: tz-aware time of the fetch: the "now" of relative dates.
        site: the site's config (name, timezone of dates written without offset).

    Returns:
        A ``TopicPageRecord`` for a listing, an ``ArticleRecord`` for an article, None for any
        other page (only its links matter).
    """
    if isinstance(extracted, ListingPage):
        return _normalize_listing(extracted, target, fetched_at=fetched_at, site=site)
    if isinstance(extracted, ArticlePage):
        return _normalize_article(extracted, target, fetched_at=fetched_at, site=site)
    return None


def _normalize_listing(
    page: ListingPage, target: Target, *, fetched_at: datetime, site: SiteConfig
) -> TopicPageRecord:
    """A topic page record from a listing page."""
    cards = tuple(
        CardRecord(
            url=urldefrag(card.url).url,
            title=clean_text(card.title),
            published_at=parse_date(card.date, timezone=site.timezone, now=fetched_at),
            comment_count=parse_count(card.comments),
            summary=clean_text(card.summary),
        )
        for card in page.cards
    )
    return TopicPageRecord(
        site=site.name,
        topic_url=target.topic_url or page.url,
        page_url=page.url,
        page_no=target.page_no,
        name=clean_text(page.name),
        description=clean_text(page.description),
        cards=cards,
        fetched_at=fetched_at,
    )


def _normalize_article(
    page: ArticlePage, target: Target, *, fetched_at: datetime, site: SiteConfig
) -> ArticleRecord:
    """An article record from an article page."""
    title = clean_text(page.title)
    published_at = parse_date(page.published, timezone=site.timezone, now=fetched_at)
    updated_at = parse_date(page.updated, timezone=site.timezone, now=fetched_at)
    author = _clean_author(page.author)
    comment_count = parse_count(page.comments)
    summary = clean_text(page.summary)
    text = clean_text(page.text)
    topics = _topic_names(ref.name for ref in page.topics)
    return ArticleRecord(
        site=site.name,
        url=target.url,
        title=title,
        published_at=published_at,
        updated_at=updated_at,
        author=author,
        comment_count=comment_count,
        summary=summary,
        text=text,
        topics=topics,
        language=_clean_language(page.language),
        word_count=word_count(text),
        content_hash=content_hash(
            title=title,
            published_at=published_at,
            updated_at=updated_at,
            author=author,
            comment_count=comment_count,
            summary=summary,
            text=text,
            topics=topics,
        ),
        fetched_at=fetched_at,
        sources=dict(page.sources),
    )


def _clean_author(author: str | None) -> str | None:
    """An author name without a "By " lead-in."""
    cleaned = clean_text(author)
    if cleaned is None:
        return None
    return clean_text(_AUTHOR_PREFIX.sub("", cleaned.replace("\n\n", " ")))


def _topic_names(names: Iterable[str]) -> tuple[str, ...]:
    """Clean topic names, first occurrence kept, empties dropped."""
    seen: dict[str, None] = {}
    for name in names:
        cleaned = clean_text(name)
        if cleaned:
            seen.setdefault(cleaned.replace("\n\n", " "), None)
    return tuple(seen)


def _clean_language(language: str | None) -> str | None:
    """The lowercase primary subtag of a language tag (``en-GB`` -> ``en``)."""
    if not language:
        return None
    primary = re.split(r"[-_]", language.strip(), maxsplit=1)[0].lower()
    return primary if re.fullmatch(r"[a-z]{2,3}", primary) else None
