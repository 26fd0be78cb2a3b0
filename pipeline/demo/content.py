"""The demo site's model: a deterministic health blog generated in memory, and its truth.

``build_site`` turns a seed into a ``DemoSite`` (topics, articles, authors, comments); ``render``
turns that model into pages. ``DemoSite.expected_articles`` / ``expected_topics`` state, in the
record-contract shape, what a correct crawl of the rendered site must produce.
"""

from __future__ import annotations

import math
import random
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.demo import prose
from pipeline.demo.prose import InlineSpan, capitalize, slugify

__all__ = [
    "ANCHOR",
    "DEMO_TIMEZONE",
    "LAYOUTS",
    "LONDON",
    "SITE_NAME",
    "DemoArticle",
    "DemoComment",
    "DemoSite",
    "DemoTopic",
    "InlineSpan",
    "build_site",
    "slugify",
]

DEMO_TIMEZONE = "Europe/London"
"""The site's timezone: dates written without an offset are London-local."""
LONDON = ZoneInfo(DEMO_TIMEZONE)
ANCHOR = datetime(2025, 11, 20, 12, 0, tzinfo=LONDON)
"""The demo site's "now" when ``build_site`` gets none: fixed, so output is identical run to run."""
SITE_NAME = "MedGuide Demo"
LAYOUTS = ("plain", "heavy")
"""Page layouts: ``plain`` (the default, 6-11 KB articles: what the tests use) or ``heavy`` (a
WordPress-like theme with its boilerplate, mega menu, sidebars and comments: 30-60 KB articles,
for benchmarks). The site's content and truth are the same in both."""


@dataclass(frozen=True, slots=True)
class DemoComment:
    """One reader comment shown under an article (at most three are shown)."""

    author: str
    posted: datetime
    text: str


@dataclass(frozen=True, slots=True)
class DemoArticle:
    """One article of the demo site.

    Attributes:
        slug: last path segment; path: ``/<yyyy>/<mm>/<slug>/`` (London-local month).
        paragraphs: the text a reader sees, one string per paragraph (NFC).
        topics / topic_slugs: the article's 1-3 topics, in the order its page lists them.
        published / updated: aware Europe/London datetimes (``updated`` None for most).
        comment_count: None when comments are closed.
        has_jsonld: whether the page carries a BlogPosting JSON-LD block (even post ids).
        post_id: the WordPress-style id (``post-123``), ascending with publication.
        keyword: a made-up word found in this article's text only (never in any title).
        markup: ``paragraphs`` as inline spans (links, strong, em); joined they equal the text.
        comments: the comments the page shows.
    """

    slug: str
    path: str
    title: str
    summary: str
    paragraphs: tuple[str, ...]
    topics: tuple[str, ...]
    topic_slugs: tuple[str, ...]
    author: str
    published: datetime
    updated: datetime | None
    comment_count: int | None
    has_jsonld: bool
    post_id: int
    author_slug: str
    keyword: str
    markup: tuple[tuple[InlineSpan, ...], ...]
    comments: tuple[DemoComment, ...] = ()

    @property
    def modified(self) -> datetime:
        """The newest of ``updated`` and ``published``."""
        return self.updated or self.published


@dataclass(frozen=True, slots=True)
class DemoTopic:
    """A topic: its name, description paragraphs and its articles' slugs, newest first."""

    slug: str
    name: str
    description: tuple[str, ...]
    article_slugs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DemoSite:
    """The whole demo site: topics, articles (newest first) and paging; plus lookup helpers.

    Build it with ``build_site``; derive a changed copy with ``with_article``. ``layout`` (one of
    ``LAYOUTS``) changes only how pages are rendered.
    """

    topics: tuple[DemoTopic, ...]
    articles: tuple[DemoArticle, ...]
    per_page: int = 10
    now: datetime = ANCHOR
    layout: str = "plain"
    _articles: dict[str, DemoArticle] = field(init=False, repr=False, compare=False)
    _topics: dict[str, DemoTopic] = field(init=False, repr=False, compare=False)
    _modified: datetime = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_articles", {a.slug: a for a in self.articles})
        object.__setattr__(self, "_topics", {t.slug: t for t in self.topics})
        # the site is immutable: its last change is found once, not per request
        newest = max((a.modified for a in self.articles), default=self.now)
        object.__setattr__(self, "_modified", newest)

    def article(self, slug: str) -> DemoArticle | None:
        """The article with this slug, or None."""
        return self._articles.get(slug)

    def topic(self, slug: str) -> DemoTopic | None:
        """The topic with this slug, or None."""
        return self._topics.get(slug)

    def topic_articles(self, slug: str) -> tuple[DemoArticle, ...]:
        """A topic's articles, newest first (empty for an unknown topic)."""
        topic = self._topics.get(slug)
        return tuple(self._articles[s] for s in topic.article_slugs) if topic else ()

    @property
    def authors(self) -> dict[str, str]:
        """Author slug -> name, for every author with an article."""
        return {a.author_slug: a.author for a in sorted(self.articles, key=lambda a: a.author)}

    def author_articles(self, author_slug: str) -> tuple[DemoArticle, ...]:
        """An author's articles, newest first."""
        return tuple(a for a in self.articles if a.author_slug == author_slug)

    def page_count(self, items: int) -> int:
        """How many listing pages ``items`` cards take (at least one)."""
        return max(1, math.ceil(items / self.per_page))

    def page_of(self, articles: tuple[DemoArticle, ...], page: int) -> tuple[DemoArticle, ...]:
        """The cards of listing page ``page`` (1-based)."""
        return articles[(page - 1) * self.per_page : page * self.per_page]

    @property
    def modified(self) -> datetime:
        """The site's last change: the newest article date, or ``now`` without articles."""
        return self._modified

    def with_article(self, article: DemoArticle) -> DemoSite:
        """A copy with ``article`` added, or replacing the article of the same slug.

        Topic listings are re-derived, so a changed date or topic moves the article's cards.
        ``path`` is taken as given (change it too when a new date moves the permalink).

        Args:
            article: the new or changed article (``dataclasses.replace`` of an existing one).

        Returns:
            The changed site; this one is unchanged.
        """
        others = [a for a in self.articles if a.slug != article.slug]
        return _assemble(self.topics, [*others, article], self.per_page, self.now, self.layout)

    def without_article(self, slug: str) -> DemoSite:
        """A copy without the article ``slug`` (its page then answers 404).

        Args:
            slug: the article to drop.

        Returns:
            The changed site; this one is unchanged.
        """
        others = [a for a in self.articles if a.slug != slug]
        return _assemble(self.topics, others, self.per_page, self.now, self.layout)

    def expected_articles(self, base_url: str) -> list[dict[str, Any]]:
        """What a correct crawl must produce for every article, newest first.

        Args:
            base_url: the server's base URL, e.g. ``http://127.0.0.1:8123``.

        Returns:
            One dict per article with the record contract's keys.
        """
        base = base_url.rstrip("/")
        return [_article_truth(a, base) for a in self.articles]

    def expected_topics(self, base_url: str) -> list[dict[str, Any]]:
        """What a correct crawl must produce for every topic, in menu order.

        Args:
            base_url: the server's base URL, e.g. ``http://127.0.0.1:8123``.

        Returns:
            One dict per topic: url (page 1), name, description, article_urls, article_count.
        """
        base = base_url.rstrip("/")
        return [
            _listing_truth(
                f"{base}/topics/{t.slug}/",
                t.name,
                "\n\n".join(t.description),
                self.topic_articles(t.slug),
                base,
            )
            for t in self.topics
        ]


def _nfc(text: str) -> str:
    """``text`` in Unicode normal form C."""
    return unicodedata.normalize("NFC", text)


def _article_truth(article: DemoArticle, base: str) -> dict[str, Any]:
    """The record a correct crawl produces for one article."""
    return {
        "url": base + article.path,
        "title": _nfc(article.title),
        "published_at": article.published.isoformat(),
        "updated_at": article.updated.isoformat() if article.updated else None,
        "author": _nfc(article.author),
        "comment_count": article.comment_count,
        "summary": _nfc(article.summary),
        "text": _nfc("\n\n".join(article.paragraphs)),
        "topics": [_nfc(t) for t in article.topics],
        "language": "en",
    }


def _listing_truth(
    url: str, name: str, description: str, articles: tuple[DemoArticle, ...], base: str
) -> dict[str, Any]:
    """The record a correct crawl produces for one listing (all its pages together)."""
    return {
        "url": url,
        "name": _nfc(name),
        "description": _nfc(description),
        "article_urls": [base + a.path for a in articles],
        "article_count": len(articles),
    }


def build_site(
    *,
    articles: int = 200,
    topics: int = 8,
    seed: int = 7,
    per_page: int = 10,
    now: datetime | None = None,
    layout: str = "plain",
) -> DemoSite:
    """Generate the demo site; the same arguments always give the same site.

    Args:
        articles: how many articles (at least 1).
        topics: how many topics, 1 to 10 (the first 8 are the seed's kind of topic).
        seed: seed of the ``random.Random`` every choice is drawn from.
        per_page: cards per listing page.
        now: the site's "now" (aware); the newest article is at most a day older. Defaults to
            the fixed ``ANCHOR`` (2025-11-20 12:00 London), never the wall clock.
        layout: how pages are rendered, one of ``LAYOUTS`` (the content is the same).

    Returns:
        The site, articles newest first.

    Raises:
        ValueError: an argument is out of range, ``now`` is naive, or ``layout`` unknown.
    """
    if articles < 1 or not 1 <= topics <= len(prose.THEMES) or per_page < 1:
        raise ValueError(
            f"build_site needs articles >= 1, 1 <= topics <= {len(prose.THEMES)}, per_page >= 1; "
            f"got articles={articles}, topics={topics}, per_page={per_page}"
        )
    if layout not in LAYOUTS:
        raise ValueError(f"build_site(layout={layout!r}): choose one of {', '.join(LAYOUTS)}")
    if now is not None and now.tzinfo is None:
        raise ValueError("build_site(now=...) must be timezone-aware, e.g. datetime.now(UTC)")
    anchor = (now or ANCHOR).astimezone(LONDON).replace(second=0, microsecond=0)
    rng = random.Random(seed)
    themes = prose.THEMES[:topics]
    topic_list = tuple(DemoTopic(slugify(t.name), t.name, t.description) for t in themes)
    drafts = _Drafter(rng, themes, anchor, articles).draft_all()
    by_age = sorted(drafts, key=lambda a: (a.published, a.slug))
    numbered = [
        replace(a, post_id=101 + i, has_jsonld=(101 + i) % 2 == 0) for i, a in enumerate(by_age)
    ]
    return _assemble(topic_list, numbered, per_page, anchor, layout)


def _assemble(
    topics: tuple[DemoTopic, ...],
    articles: list[DemoArticle],
    per_page: int,
    now: datetime,
    layout: str,
) -> DemoSite:
    """A consistent site: articles newest first and each topic's article list re-derived."""
    ordered = tuple(sorted(articles, key=lambda a: (a.published, a.slug), reverse=True))
    return DemoSite(
        topics=tuple(
            replace(t, article_slugs=tuple(a.slug for a in ordered if t.slug in a.topic_slugs))
            for t in topics
        ),
        articles=ordered,
        per_page=per_page,
        now=now,
        layout=layout,
    )


@dataclass(slots=True)
class _Drafter:
    """Draws articles one by one, remembering titles, slugs and times already taken."""

    rng: random.Random
    themes: tuple[prose.Theme, ...]
    anchor: datetime
    count: int
    titles: set[str] = field(default_factory=set)
    slugs: set[str] = field(default_factory=set)
    times: set[datetime] = field(default_factory=set)

    def draft_all(self) -> list[DemoArticle]:
        """Every article, in generation order (post ids are assigned afterwards)."""
        keywords = [prose.make_keyword(i) for i in range(self.count)]
        self.rng.shuffle(keywords)
        return [self._draft(i, keywords[i]) for i in range(self.count)]

    def _draft(self, index: int, keyword: str) -> DemoArticle:
        """One article; the first ``len(themes)`` go one per topic so none is empty."""
        rng = self.rng
        primary = index if index < len(self.themes) else rng.randrange(len(self.themes))
        others = [i for i in range(len(self.themes)) if i != primary]
        extra = rng.sample(others, min(len(others), rng.choices((0, 1, 2), (5, 4, 2))[0]))
        chosen = [self.themes[i] for i in (primary, *extra)]
        words = prose.pick_words(rng, chosen)
        title = self._title(words)
        published = self._published()
        author = rng.choice(prose.AUTHORS)
        count = self._comment_count()
        slug = self._slug(title)
        markup = prose.write_paragraphs(rng, words, keyword, [t.name for t in chosen[1:]])
        return DemoArticle(
            slug=slug,
            path=f"/{published:%Y}/{published:%m}/{slug}/",
            title=title,
            summary=capitalize(rng.choice(prose.SUMMARIES).format(**words)),
            paragraphs=tuple("".join(s.text for s in p) for p in markup),
            topics=tuple(t.name for t in chosen),
            topic_slugs=tuple(slugify(t.name) for t in chosen),
            author=author,
            published=published,
            updated=self._updated(published),
            comment_count=count,
            has_jsonld=False,
            post_id=0,
            author_slug=slugify(author),
            keyword=keyword,
            markup=markup,
            comments=self._comments(published, min(count or 0, 3), words),
        )

    def _title(self, words: dict[str, str]) -> str:
        """A title no other article has (a part number settles a rare clash)."""
        title = self.rng.choice(prose.TITLES).format(**words)
        base, part = title, 1
        while title in self.titles:
            part += 1
            title = f"{base} (Part {part})"
        self.titles.add(title)
        return title

    def _slug(self, title: str) -> str:
        """A slug no other article has."""
        base = slugify(title, max_words=6)
        slug, n = base, 1
        while slug in self.slugs:
            n += 1
            slug = f"{base}-{n}"
        self.slugs.add(slug)
        return slug

    def _published(self) -> datetime:
        """A London-local publication time 1-730 days before the anchor, unique on the site."""
        while True:
            day = self.anchor.date() - timedelta(days=self.rng.randint(1, 730))
            # 07:00-22:59 avoids the hours a DST switch skips or repeats.
            at = time(self.rng.randint(7, 22), self.rng.randrange(60))
            published = datetime.combine(day, at, tzinfo=LONDON)
            if published not in self.times:
                self.times.add(published)
                return published

    def _after(self, start: datetime, max_days: int) -> datetime:
        """A whole-minute time after ``start`` and before the anchor (UTC arithmetic, DST-safe)."""
        span = min(self.anchor - start, timedelta(days=max_days)) // timedelta(minutes=1)
        later = start.astimezone(UTC) + timedelta(minutes=self.rng.randint(20, max(20, span)))
        return later.astimezone(LONDON)

    def _updated(self, published: datetime) -> datetime | None:
        """About one article in five was updated after publication."""
        return self._after(published, 90) if self.rng.random() < 0.2 else None

    def _comment_count(self) -> int | None:
        """~5% closed (None), ~10% none, ~5% exactly one, the rest 2-150."""
        draw = self.rng.random()
        if draw < 0.05:
            return None
        if draw < 0.15:
            return 0
        if draw < 0.20:
            return 1
        return self.rng.randint(2, 150)

    def _comments(
        self, published: datetime, shown: int, words: dict[str, str]
    ) -> tuple[DemoComment, ...]:
        """The (at most three) comments the page shows, oldest first."""
        times = sorted(self._after(published, 60) for _ in range(shown))
        return tuple(
            DemoComment(
                self.rng.choice(prose.READERS), at, self.rng.choice(prose.COMMENTS).format(**words)
            )
            for at in times
        )
