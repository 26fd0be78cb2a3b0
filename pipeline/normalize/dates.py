"""Normalize stage, dates: every common written date form to ISO 8601, or None.

Explicit regex parsers first (ISO 8601, "Nov, 1 2025", "1 November 2025", numeric dates in the
site's day/month order, RFC 2822, Unix timestamps, "3 days ago"), dateparser for the rest (a few
non-English month names). A date in the future beyond a small skew, before 1990 or parsed from
an unrelated number is rejected: None, never a guess.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["EARLIEST_DATE", "FUTURE_TOLERANCE", "parse_date"]

logger = logging.getLogger(__name__)

EARLIEST_DATE = date(1990, 1, 1)
"""Dates before this are rejected: no web page was published then."""
FUTURE_TOLERANCE = timedelta(days=2)
"""Dates later than ``now`` plus this are rejected (time-zone slack, scheduled posts)."""
FALLBACK_LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "pt", "pl", "sv", "da", "nb", "fi")
"""Languages dateparser may try for month names the explicit parsers do not know."""
_MAX_DATE_TEXT = 80  # longer strings are sentences, not date stamps
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
