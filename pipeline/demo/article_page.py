"""The demo site's article page: header and meta, content, topic links, comments, JSON-LD.

Follows the shared markup spec: ``time`` elements with offsets, the comment-count wording
variants, JSON-LD on even post ids only, a tracking script and a figure inside
``entry-content`` (not article text), and comments carrying their own dates. Built on the frame
of ``pages``.
"""

# Curly quotes and dashes in the markup are deliberate (the spec's real-world punctuation).

from __future__ import annotations

import html
import json
import unicodedata
from datetime import datetime

from pipeline.demo import heavy
from pipeline.demo.content import DemoArticle, DemoSite
from pipeline.demo.pages import Frame, card_date, document, esc, link_tag, meta_tag
from pipeline.demo.prose import InlineSpan

__all__ = ["article_page"]

_TEXTURIZE = str.maketrans({"’": "&#8217;", "“": "&#8220;", "”": "&#8221;", "—": "&#8212;"})
_RESPOND = (
    '<div id="respond" class="comment-respond">'
    '<h3 class="comment-reply-title">Leave a Reply</h3></div>'
)


def _comment_time(moment: datetime) -> str:
    """``Nov, 3 2025 at 8:12 am``."""
    hour = moment.hour % 12 or 12
    half = "am" if moment.hour < 12 else "pm"
    return f"{card_date(moment)} at {hour}:{moment.minute:02d} {half}"


def _prose(text: str, decompose: bool) -> str:
    """Paragraph text as WordPress writes it: escaped, numeric entities for curly punctuation."""
    escaped = html.escape(text, quote=False).translate(_TEXTURIZE)
    return unicodedata.normalize("NFD", escaped) if decompose else escaped


def _span(span: InlineSpan, base: str, decompose: bool) -> str:
    """One inline span as HTML."""
    inner = _prose(span.text, decompose)
    if span.tag == "a":
        return f'<a href="{esc(base + span.href)}">{inner}</a>'
    return f"<{span.tag}>{inner}</{span.tag}>" if span.tag else inner


def _entry_content(article: DemoArticle, base: str, sharing: str = "") -> str:
    """Paragraphs, then a tracking script and (post ids 1 mod 3) a figure.

    Post ids divisible by 3 write their non-ASCII letters decomposed (NFD), so an extractor
    must normalize to NFC to match the truth.
    """
    decompose = article.post_id % 3 == 0
    paragraphs = "\n".join(
        "<p>" + "".join(_span(s, base, decompose) for s in spans) + "</p>"
        for spans in article.markup
    )
    figure = ""
    if article.post_id % 3 == 1:
        figure = (
            f'\n<figure class="wp-block-image"><img src="{base}/img/{article.slug}.jpg" alt="">'
            f"<figcaption>Photo for illustration only — {esc(article.topics[0])}</figcaption>"
            "</figure>"
        )
    script = f"<script>window.trackRead && trackRead({article.post_id})</script>"
    return f'<div class="entry-content">\n{paragraphs}\n{script}{figure}{sharing}\n</div>'


def _byline(article: DemoArticle, base: str) -> str:
    """The entry meta: published (and updated) time, author link, comments link."""
    published = article.published
    meta = [
        f'<span class="posted-on"><time class="entry-date published" '
        f'datetime="{published.isoformat()}">{card_date(published)}</time></span>'
    ]
    if article.updated:
        meta.append(
            f'<time class="updated" datetime="{article.updated.isoformat()}">'
            f"{card_date(article.updated)}</time>"
        )
    meta.append(
        f'<span class="byline">By <span class="author vcard"><a class="url fn n" rel="author" '
        f'href="{base}/author/{article.author_slug}/">{esc(article.author)}</a></span></span>'
    )
    meta.append(f'<span class="comments-link">{_commentslink_tag(article.comment_count)}</span>')
    return "\n      ".join(meta)


def _commentslink_tag(count: int | None) -> str:
    """The entry meta's comment wording: closed, none, one, or many."""
    if count is None:
        return "Comments are closed"
    if count == 0:
        return '<a href="#respond">Leave a comment</a>'
    return f'<a href="#comments">{count} Comment{"" if count == 1 else "s"}</a>'


def _comments(article: DemoArticle) -> str:
    """The comments section: title, up to three comments, and the reply form when open."""
    count = article.comment_count
    if count is None:
        closed = '<p class="no-comments">Comments are closed.</p>'
        return f'<section id="comments" class="comments-area">{closed}</section>'
    if count == 0:
        title = '<h2 class="comments-title">No comments yet</h2>'
        return f'<section id="comments" class="comments-area">\n  {title}\n  {_RESPOND}\n</section>'
    items = "\n".join(
        f'    <li class="comment"><article class="comment-body"><footer class="comment-meta">'
        f'<b class="fn">{esc(c.author)}</b>\n      <time datetime="{c.posted.isoformat()}">'
        f"{_comment_time(c.posted)}</time></footer>\n"
        f'      <div class="comment-content"><p>{esc(c.text)}</p></div></article></li>'
        for c in article.comments
    )
    noun = "thought" if count == 1 else "thoughts"
    return f"""<section id="comments" class="comments-area">
  <h2 class="comments-title">{count} {noun} on “{esc(article.title)}”</h2>
  <ol class="comment-list">
{items}
  </ol>
  {_RESPOND}
</section>"""


def _jsonld(article: DemoArticle, base: str) -> str:
    """The BlogPosting JSON-LD script, ``</`` escaped so no text can end the script early."""
    data: dict[str, object] = {
        "@context": "https://schema.org",
        "@type": "BlogPosting",
        "mainEntityOfPage": base + article.path,
        "headline": article.title,
        "description": article.summary,
        "datePublished": article.published.isoformat(),
    }
    if article.updated:
        data["dateModified"] = article.updated.isoformat()
    author_url = f"{base}/author/{article.author_slug}/"
    data["author"] = {"@type": "Person", "name": article.author, "url": author_url}
    if article.comment_count is not None:
        data["commentCount"] = article.comment_count
    text = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    return f'<script type="application/ld+json">{text}</script>'


def _article_head(article: DemoArticle, base: str) -> list[str]:
    """The article page's head elements after the title."""
    head = [
        link_tag("canonical", base + article.path),
        meta_tag("name", "description", article.summary),
        meta_tag("property", "og:type", "article"),
        meta_tag("property", "og:title", article.title),
        meta_tag("property", "article:published_time", article.published.isoformat()),
    ]
    if article.updated:
        head.append(meta_tag("property", "article:modified_time", article.updated.isoformat()))
    if article.has_jsonld:
        head.append(_jsonld(article, base))
    return head


def article_page(site: DemoSite, base: str, article: DemoArticle) -> str:
    """An article page: header with meta, content, topic links, comments.

    Args:
        site: the site model (for the frame).
        base: the base URL links are built from.
        article: the article.

    Returns:
        The page's HTML.
    """
    crumbs, sharing, after = "", "", ""
    comments = _comments(article)
    if site.layout == "heavy":
        crumbs, sharing, after = heavy.article_extras(site, base, article)
        crumbs, after = crumbs + "\n", "\n" + after
        comments = heavy.comments_section(article, base)
    topics = ", ".join(
        f'<a href="{base}/topics/{slug}/" rel="category tag">{esc(name)}</a>'
        for slug, name in zip(article.topic_slugs, article.topics, strict=True)
    )
    main = f"""{crumbs}<article id="post-{article.post_id}" class="post type-post">
  <header class="entry-header">
    <h1 class="entry-title">{esc(article.title)}</h1>
    <div class="entry-meta">
      {_byline(article, base)}
    </div>
  </header>
  {_entry_content(article, base, sharing)}
  <footer class="entry-footer">
    <span class="cat-links">Posted in {topics}</span>
  </footer>
</article>{after}
{comments}"""
    body_class = "post-template-default single single-post"
    frame = Frame(article.title, _article_head(article, base), body_class, main)
    return document(site, base, frame)
