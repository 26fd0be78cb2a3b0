"""Extract stage data: the CSS selectors, names and patterns the extractors try, as data.

Nothing here is site-specific: these are the conventions common themes (WordPress, Ghost,
Blogger, schema.org, microformats) share. A site's ``selectors`` in the config come first.
Each tuple is tried in order; the first selector that yields a value wins.
"""

from __future__ import annotations

import re

from pipeline.models import ArchiveKind

# --- where to look ------------------------------------------------------------------------------

MAIN = ("main", "[role=main]", "#main", "#content", ".site-main", ".content")
"""The page's main content area, in order of trust (the body when none matches)."""

NOISE = (
    "aside, nav, [role=navigation], [role=complementary], [role=banner], [role=contentinfo], "
    ".site-header, .site-footer, #masthead, #colophon, .widget-area, .sidebar, "
    "#sidebar, #comments, .comments-area, .comment-list, .comments, .comment, .comment-respond, "
    "[itemprop=comment], .related, .related-posts, .jp-relatedposts, .yarpp-related, "
    ".sharedaddy, .share, .sharing, .social-share, .share-buttons, .breadcrumbs, .breadcrumb"
)
"""Regions that never hold a page's own cards, dates or authors (sidebars, comments, share bars)."""

COMMENTS = "#comments, .comments-area, .comment-list, .comment, [itemprop=comment], .h-cite"
"""Comment regions: no author, date or topic of the article comes from here."""

CONTENT_NOISE = (
    "figure, figcaption, nav, aside, form, button, .sharedaddy, .share, .sharing, .social-share, "
    ".share-buttons, .addtoany_share_save_container, .jp-relatedposts, .related-posts, "
    ".yarpp-related, #comments, .comments-area, .comment-respond, .screen-reader-text, "
    ".entry-meta, .entry-footer, .post-meta, .cat-links, .tags-links, .post-tags, .author-bio, "
    ".advertisement, .ad, .ads, .newsletter, .wp-block-buttons, .post-navigation, "
    ".entry-header, .post-header, .byline, .tags, .post-categories, .post-labels"
)
"""Parts of an article body that are not its text."""


def selector_union(*lists: str) -> str:
    """One selector list matching what any of ``lists`` matches, each selector once.

    lexbor walks the tree once per call, so one call with the union costs about one of its
    parts. For lists of simple selectors (no commas inside a selector), as all here are.
    """
    return ", ".join(dict.fromkeys(part.strip() for query in lists for part in query.split(",")))


NOISE_OR_COMMENTS = selector_union(NOISE, COMMENTS)
"""``NOISE`` and ``COMMENTS`` in one list: what an article's fields never come from."""

CONTENT_NOISE_OR_COMMENTS = selector_union(CONTENT_NOISE, COMMENTS)
"""``CONTENT_NOISE`` and ``COMMENTS`` in one list: what an article's text leaves out."""

SKIP_TAGS = frozenset(
    {"script", "style", "noscript", "template", "svg", "math", "iframe", "object", "embed",
     "canvas", "select", "textarea", "video", "audio", "head", "title", "button"}
)  # fmt: skip
"""Elements whose content is never page text."""

BLOCK_TAGS = frozenset(
    {"p", "div", "section", "article", "header", "footer", "main", "h1", "h2", "h3", "h4", "h5",
     "h6", "ul", "ol", "li", "dl", "dt", "dd", "blockquote", "pre", "table", "thead", "tbody",
     "tfoot", "tr", "td", "th", "caption", "figure", "figcaption", "address", "details",
     "summary", "fieldset", "hr", "form", "nav", "aside", "center", "hgroup"}
)  # fmt: skip
"""Elements that start a new paragraph of text."""

HEADINGS = "h1, h2, h3, h4, h5, h6"

# --- listing pages ------------------------------------------------------------------------------

LISTING_NAME = (
    ".page-title", ".archive-title", ".taxonomy-title", ".tag-title", ".category-title",
    ".author-title", ".page-header h1", ".archive-header h1", "h1",
)  # fmt: skip
LISTING_DESCRIPTION = (
    ".archive-description", ".taxonomy-description", ".term-description", ".tag-description",
    ".category-description", ".page-description", ".author-description", ".archive-meta",
    ".field--name-description", ".section-dek",
)  # fmt: skip
SITE_TITLE = ".site-title, .site-name, .logo, .site-branding"
CARD_TITLE = (
    ".entry-title, .post-title, .post-card-title, .card-title, [itemprop=headline], .p-name"
)
"""Card title markup; a card's first heading is the fallback (a date header is not a title)."""
CARD_DATE = (
    ".posted-on, .entry-date, .post-date, .published, .dt-published, .date, .meta-date, "
    ".post-card-meta-date, [itemprop=datePublished], .date-header, .field--name-created, "
    ".timestamp, abbr"
)
CARD_COMMENTS = (
    ".comments-count, .comments-link, .comment-count, .comments-number, .post-comments, "
    "[itemprop=commentCount], a[href*='#comments'], a[href*='#respond']"
)
CARD_SUMMARY = (
    ".entry-summary, .post-excerpt, .post-card-excerpt, .entry-excerpt, .excerpt, .summary, "
    ".p-summary, [itemprop=description], .post-summary, .card-text, .dek, .standfirst"
)
PAGINATION = (
    ".pagination, .nav-links, .page-numbers, .wp-pagenavi, .pager, nav.navigation, "
    ".pagination-links, .blog-pager, [aria-label*=agination]"
)
#: Links in (or being) a pagination container, in one selector: WordPress marks every page link
#: ``.page-numbers`` too, so a query per matched container took 2.6 ms on a topic page listing
#: ~430 page numbers. As a list (``.pagination a[href], .nav-links a[href], ...``) lexbor walks
#: the page once per selector: 0.96 ms; as one ``a[href]:is(...)`` it walks it once: 0.27 ms,
#: each link matched once. Each container is spelt ``X *``: lexbor's ``:is(X) a`` (and
#: ``a:is(:is(X) *)``) misses links below a child element.
PAGINATION_LINKS = "a[href]:is({})".format(
    ", ".join(
        [f"{part} *" for part in PAGINATION.split(", ")]
        + [part for part in PAGINATION.split(", ") if part[0] in ".["]
    )
)
NEXT_LINK = ("a[rel~=next]", "a.next", ".nav-previous a", ".older-posts", "a.blog-pager-older-link")
NEXT_TEXT = re.compile(
    r"^(?:older\s+(?:posts|entries)|next(?:\s+page)?|more\s+posts)\b|^[\u00bb\u203a\u2192]$", re.I
)

ARCHIVE_BODY_CLASSES = frozenset({"archive", "category", "tag", "author", "blog", "tax", "paged"})
"""Body classes (WordPress and alike) of listing pages."""
ARCHIVE_KINDS: dict[ArchiveKind, frozenset[str]] = {
    "search": frozenset({"search", "search-results", "search-no-results", "path-search"}),
    "author": frozenset({"author", "author-template", "page-user", "path-user", "author-archive"}),
    "date": frozenset({"date", "date-archive", "archive-date"}),
}
"""Body classes that say a listing is not a topic archive (WordPress, Ghost, Drupal)."""
ARCHIVE_PATHS: dict[ArchiveKind, re.Pattern[str]] = {
    "search": re.compile(r"/search/?$|/search/(?!label/)|[?&](?:s|q|query)=", re.I),
    "author": re.compile(r"/(?:author|authors|user|users|profile|people|writers?)/[^/]+", re.I),
    "date": re.compile(r"^/(?:19|20)\d\d/(?:\d\d/){0,2}(?:page/\d+/?)?$"),
}
"""URL shapes of search, author and date archives (Blogger's ``/search/label/x`` is a topic)."""
ARCHIVE_HEADINGS: dict[ArchiveKind, re.Pattern[str]] = {
    "author": re.compile(r"^(?:author|posts?\s+by|articles?\s+by|stories\s+by)\b", re.I),
    "search": re.compile(r"^(?:search\s+results|results\s+for|you\s+searched)\b", re.I),
    "date": re.compile(r"^(?:(?:daily|monthly|yearly)\s+archives?|month|year|day)\s*:", re.I),
}
"""Heading wordings of non-topic archives."""
LABEL_PATH = re.compile(r"/search/label/([^/?#]+)")
"""Blogger's label pages name their topic only in the URL (and a status line)."""
SINGLE_CARD = "article, .post, .hentry, .h-entry, .post-card, .type-post"
"""Elements that can be a card on their own (the last page of a topic may hold just one)."""

LISTING_PATH = re.compile(
    r"/(?:category|categories|tag|tags|topic|topics|author|authors|page|search|label|feed|"
    r"wp-admin|wp-login\.php|wp-json|cart|login|signup|archive|archives)(?:/|$)|[?&](?:s|q|page)=",
    re.I,
)
"""URL paths of listing, utility and admin pages: never an article."""
MEDIA_PATH = re.compile(r"\.(?:jpe?g|png|gif|webp|svg|pdf|zip|mp[34]|css|js|xml|json|txt)$", re.I)
"""URLs of files, not pages."""

# --- article pages ------------------------------------------------------------------------------

ARTICLE_ROOT = (".h-entry", ".hentry", "[itemtype*=Article]", "[itemtype*=BlogPosting]", "article")
ARTICLE_BODY = (
    "[itemprop~=articleBody]", ".e-content", ".entry-content", ".post-content", ".article-content",
    ".post-body", ".article-body", ".entry-body", ".content-body", ".story-body", ".post-entry",
    ".single-content", ".blog-post-content",
)  # fmt: skip
AUTHOR = (
    "a[rel~=author]", ".byline .author", ".author .fn", ".vcard .fn", ".author-name",
    ".post-author", ".entry-author", ".byline",
)  # fmt: skip
"""Byline selectors, most precise first."""
TOPICS = (
    "a[rel~=tag], a[rel~=category], .cat-links a, .tags-links a, .post-categories a, "
    ".post-tags a, .entry-categories a, .post-labels a, .p-category, .field--name-field-tags a, "
    ".field--name-field-category a"
)
DATE_TEXT = (
    ".posted-on, .entry-date, .post-date, .published, .date, .meta-date, .field--name-created"
)
COMMENT_LINK = (
    ".comments-link, .comments-count, .comment-count, .comments-number, .comment-link, "
    "a[href$='#comments'], a[href$='#respond']"
)
COMMENT_TITLE = ".comments-title, #comments h2, #comments h3"
TITLE_SEPARATORS = (
    " | ",
    " \u2013 ",
    " \u2014 ",
    " - ",
    " :: ",
    " \u00b7 ",
    " \u00bb ",
    " \u2022 ",
)
"""Separators between a page title and the site name in ``<title>``."""

# --- schema.org -------------------------------------------------------------------------------

ARTICLE_TYPES = frozenset(
    {"Article", "BlogPosting", "NewsArticle", "TechArticle", "ScholarlyArticle", "Report",
     "SocialMediaPosting", "LiveBlogPosting", "MedicalScholarlyArticle", "AnalysisNewsArticle",
     "OpinionNewsArticle", "ReportageNewsArticle", "ReviewNewsArticle", "BackgroundNewsArticle",
     "AskPublicQuestion", "SatiricalArticle", "DiscussionForumPosting", "Posting"}
)  # fmt: skip
"""schema.org types whose presence makes a page an article."""
PAGE_TYPES = frozenset({"WebPage", "ItemPage", "MedicalWebPage"})
"""schema.org page types read for article fields when no article type gives them."""

# --- meta tags --------------------------------------------------------------------------------

META = {
    "title": ("og:title", "twitter:title", "dc.title", "dcterms.title"),
    "published": (
        "article:published_time", "og:article:published_time", "dcterms.issued",
        "dc.date.issued", "dcterms.created", "dc.date.created", "dc.date", "dcterms.date",
        "date", "pubdate", "publish-date", "parsely-pub-date", "sailthru.date",
        "citation_publication_date",
    ),
    "updated": (
        "article:modified_time", "og:updated_time", "dcterms.modified", "dc.date.modified",
    ),
    "author": (
        "author", "article:author", "dc.creator", "dcterms.creator", "parsely-author",
        "sailthru.author", "citation_author",
    ),
    "summary": ("og:description", "description", "twitter:description", "dc.description",
                "dcterms.description"),
    "language": ("content-language", "dc.language", "dcterms.language", "og:locale"),
}  # fmt: skip
"""Meta tag names/properties per field, in order of trust."""

# --- what values look like ----------------------------------------------------------------------

_MONTH_WORD = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
DATE_LIKE = re.compile(
    rf"\b(?:19|20)\d\d-\d\d-\d\d|\b\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}\b"
    rf"|\b\d{{4}}[/.]\d{{1,2}}[/.]\d{{1,2}}\b"
    rf"|\b(?:{_MONTH_WORD})\b\.?,?\s*\d{{1,2}}(?!\d)|\b\d{{1,2}}(?:st|nd|rd|th)?\.?\s+(?:of\s+)?(?:{_MONTH_WORD})\b"
    rf"|\b\d+\s+(?:second|minute|hour|day|week|month|year)s?\s+ago\b|^(?:yesterday|today)$"
    rf"|^\d{{9,10}}$|\b\d{{1,2}}\.?\s+\w{{3,}}\.?\s+\d{{4}}\b",
    re.I,
)
"""Text that reads as a date (checked before a value is accepted as one)."""
COUNT_LIKE = re.compile(
    r"^\(?\d[\d,.]*\s*[km]?\)?$|^(?:one|\d[\d,.]*[km]?)\s+(?:comments?|responses?|replies|reply"
    r"|thoughts?)\b|^(?:no\s+(?:comments?|responses?|replies)|leave\s+a\s+(?:comment|reply))"
    r"|^comments?\s*[:(]?\s*\d+\)?$|^comments?\s+(?:are\s+)?(?:closed|off)\b",
    re.I,
)
"""Text that reads as a comment count, or says comments are closed."""
BARE_NUMBER = re.compile(r"^\d[\d,.]*[km]?$", re.I)
CLOSED = re.compile(r"^comments?\s+(?:are\s+)?(?:closed|off)\b", re.I)
COMMENT_TITLE_COUNT = re.compile(
    r"^\s*(\d[\d,]*|one)\s+(comments?|responses?|replies|reply|thoughts?)\b", re.I
)
NAME_PREFIX = re.compile(
    r"^(?:category|tag|topic|archives?|author|label|posts?\s+tagged|tagged|posts?\s+in"
    r"|browsing\s+category|posts?\s+by)\s*[:\uff1a]\s*",
    re.I,
)
NAME_SUFFIX = re.compile(r"\s+archives?$", re.I)

# --- which source wins ------------------------------------------------------------------------

FIELD_SOURCES = {
    "title": ("selector", "jsonld", "microdata", "microformats", "meta", "markup", "title_tag"),
    "published": ("selector", "jsonld", "microdata", "microformats", "meta", "time", "text"),
    "updated": ("selector", "jsonld", "microdata", "microformats", "meta", "time"),
    "author": ("selector", "jsonld", "microdata", "microformats", "meta", "markup"),
    "comments": ("selector", "jsonld", "microdata", "text"),
    "summary": ("selector", "jsonld", "microdata", "microformats", "meta"),
    "language": ("markup", "meta", "jsonld"),
}
"""Per field, the sources tried in order (``text`` and ``topics`` have their own rules):
``selector`` = the site's configured selectors, ``jsonld``, ``microdata``, ``microformats``
(h-entry/hAtom), ``meta`` (meta tags), ``markup`` (common theme markup: h1, byline, html lang),
``time`` (a ``<time datetime>`` near the title), ``text`` (visible wording: "9 Comments",
a date line), ``title_tag`` (``<title>`` without the site name)."""
