"""The demo site's ``heavy`` layout: the same pages in a WordPress-like theme of realistic weight.

Real blog pages are mostly theme: a long ``<head>`` (global-styles CSS, emoji and config scripts,
dozens of ``<link>``/``<meta>``), a mega menu, sidebar widgets, a comments section with avatars
and a reply form, a footer and trailing scripts. This layout adds all of that around the
``plain`` layout's content, so benchmarks parse 30-60 KB articles instead of 6-11 KB ones.
The content a crawl extracts (and so the truth) is unchanged: every added region is one a
correct extractor leaves out (``nav``, ``aside``, ``.widget-area``, ``.site-footer``,
``#comments``, ``.sharedaddy``, ``.jp-relatedposts``), and every added link leads to a page the
site has (topics, articles, authors) or to another host. Deterministic: derived from the model
and post ids only. ``pages.document`` and ``article_page`` call in here when
``site.layout == "heavy"``.
"""

# Curly quotes and dashes in the markup are deliberate (the spec's real-world punctuation).

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from datetime import timedelta

from pipeline.demo.content import SITE_NAME, DemoArticle, DemoComment, DemoSite
from pipeline.demo.pages import FOOTER_TEXT, Frame, card_date, esc
from pipeline.demo.prose import READERS

__all__ = ["COMMENTS_SHOWN", "article_extras", "comments_section", "heavy_document"]

COMMENTS_SHOWN = 10
"""Comments on the first comment page; the rest load with a button (no link: no new pages)."""

_COLOURS = [
    "black",
    "cyan-bluish-gray",
    "white",
    "pale-pink",
    "vivid-red",
    "luminous-vivid-orange",
    "luminous-vivid-amber",
    "light-green-cyan",
    "vivid-green-cyan",
    "pale-cyan-blue",
    "vivid-cyan-blue",
    "vivid-purple",
    "primary",
    "secondary",
    "tertiary",
    "accent",
    "surface",
    "muted",
    "border",
    "foreground",
    "background",
]
_SIZES = ["small", "medium", "large", "x-large", "xx-large", "huge"]
_EXTRA_COMMENTS = (
    "Thanks for writing this up so clearly.",
    "My pharmacist said much the same thing last week.",
    "I’ve bookmarked this for later.",
    "Could you do a follow-up on what to do when a dose is missed?",
    "The section on side effects was really reassuring.",
    "I shared this with my sister, who has just been prescribed the same thing.",
    "Is there any difference if you take it with food?",
    "Really useful — the leaflet in the box is so hard to read.",
    "Had no idea about the interaction with grapefruit juice!",
    "Great article, but please add sources next time.",
    "This matches what my consultant told me.",
    "Finally an explanation that doesn’t need a medical degree.",
)
_EMOJI = (
    'window._wpemojiSettings={"baseUrl":"https:\\/\\/s.w.org\\/images\\/core\\/emoji\\/14.0.0'
    '\\/72x72\\/","ext":".png","svgUrl":"https:\\/\\/s.w.org\\/images\\/core\\/emoji\\/'
    '14.0.0\\/svg\\/","svgExt":".svg"};!function(i,n){var o,s,e;function c(e){try{var t={'
    "supportTests:e,timestamp:(new Date).valueOf()};sessionStorage.setItem(o,JSON.stringify(t))"
    "}catch(e){}}function p(e,t,n){e.clearRect(0,0,e.canvas.width,e.canvas.height),e.fillText(t,"
    "0,0);var t=new Uint32Array(e.getImageData(0,0,e.canvas.width,e.canvas.height).data),r=(e."
    "clearRect(0,0,e.canvas.width,e.canvas.height),e.fillText(n,0,0),new Uint32Array(e."
    "getImageData(0,0,e.canvas.width,e.canvas.height).data));return t.every(function(e,t){"
    'return e===r[t]})}function u(e,t,n){switch(t){case"flag":return n(e,"\\ud83c\\udff3'
    '\\ufe0f\\u200d\\u26a7\\ufe0f","\\ud83c\\udff3\\ufe0f\\u200b\\u26a7\\ufe0f")?!1:!n(e,'
    '"\\ud83c\\uddfa\\ud83c\\uddf3","\\ud83c\\uddfa\\u200b\\ud83c\\uddf3");case"emoji":'
    'return!n(e,"\\ud83e\\udef1\\ud83c\\udffb\\u200d\\ud83e\\udef2\\ud83c\\udfff","\\ud83e'
    '\\udef1\\ud83c\\udffb\\u200b\\ud83e\\udef2\\ud83c\\udfff")}return!1}function f(e,t,n){'
    'var r="undefined"!=typeof WorkerGlobalScope&&self instanceof WorkerGlobalScope?new '
    'OffscreenCanvas(300,150):i.createElement("canvas"),a=r.getContext("2d",{'
    'willReadFrequently:!0}),o=(a.textBaseline="top",a.font="600 32px Arial",{});return '
    "e.forEach(function(e){o[e]=t(a,e,n)}),o}}(window,document);"
)
_ANALYTICS = (
    "window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}"
    "gtag('js',new Date());gtag('config','G-DEMO000000',{'anonymize_ip':true,"
    "'cookie_flags':'SameSite=None;Secure'});(function(){var s=document.createElement('script');"
    "s.async=true;s.src='https://www.googletagmanager.com/gtag/js?id=G-DEMO000000';"
    "document.head.appendChild(s);})();"
)

_COOKIE_BANNER = """<div id="cookie-notice" role="dialog" aria-label="Cookie consent" \
class="cookie-notice-hidden cookie-revoke-hidden cn-position-bottom" style="background-color: \
rgba(50,50,58,1);"><div class="cookie-notice-container" style="color: #fff"><span \
id="cn-notice-text" class="cn-text-container">We use cookies to make this site work and to \
understand how it is used. Some are set by third parties whose services appear on our pages: \
analytics, embedded videos and the sharing buttons. You can accept them all, refuse those that \
are not strictly necessary, or choose for each purpose; you can change your mind at any time \
from the privacy settings linked in the footer.</span><span id="cn-notice-buttons" \
class="cn-buttons-container"><button id="cn-accept-cookie" data-cookie-set="accept" \
class="cn-set-cookie cn-button" aria-label="Accept all">Accept all</button><button \
id="cn-refuse-cookie" data-cookie-set="refuse" class="cn-set-cookie cn-button" \
aria-label="Refuse">Refuse</button><button id="cn-more-info" class="cn-more-info cn-button" \
aria-label="Choose">Choose</button></span><button id="cn-close-notice" data-cookie-set="accept" \
class="cn-close-icon" aria-label="Close"></button></div></div>
<script>var cnArgs={"cookieName":"cookie_notice_accepted","cookieTime":"2592000",\
"cookieValue":"true","onScroll":"0","onScrollOffset":"100","onClick":"0","revokeCookies":"0",\
"cache":"1","refuse":"1","redirection":"0","secure":"0","globalCookie":"0"};</script>"""


@dataclass(frozen=True, slots=True)
class _Chrome:
    """The parts of every heavy page that depend only on the site and base URL."""

    head: str
    header: str
    sidebar: str
    footer: str
    latest: dict[str, tuple[DemoArticle, ...]]
    """Each topic's four newest articles, by topic slug."""
    positions: dict[str, int]
    """Each article's index in ``site.articles``, by slug (for previous/next links)."""


_cache: list[tuple[DemoSite, str, _Chrome]] = []


def _chrome(site: DemoSite, base: str) -> _Chrome:
    """The site-wide parts, built once per (site, base): pages differ only in their main."""
    if _cache and _cache[0][0] is site and _cache[0][1] == base:
        return _cache[0][2]
    latest = {t.slug: site.topic_articles(t.slug)[:4] for t in site.topics}
    chrome = _Chrome(
        _head(base),
        _header(site, base, latest),
        _sidebar(site, base),
        _footer(site, base),
        latest,
        {a.slug: i for i, a in enumerate(site.articles)},
    )
    _cache[:] = [(site, base, chrome)]
    return chrome


def _global_styles() -> str:
    """WordPress's global-styles block: preset variables and a utility class per preset."""
    palette = [
        f"--wp--preset--color--{name}: #{hashlib.md5(name.encode()).hexdigest()[:6]};"
        for name in _COLOURS
    ]
    sizes = [f"--wp--preset--font-size--{s}: {13 + 5 * i}px;" for i, s in enumerate(_SIZES)]
    spacing = [f"--wp--preset--spacing--{10 * i}: {0.44 * 1.5**i:.2f}rem;" for i in range(2, 9)]
    rules = []
    for name in _COLOURS:
        var = f"var(--wp--preset--color--{name})"
        rules += [
            f".has-{name}-color{{color: {var} !important;}}",
            f".has-{name}-background-color{{background-color: {var} !important;}}",
        ]
    rules += [
        f".has-{s}-font-size{{font-size: var(--wp--preset--font-size--{s}) !important;}}"
        for s in _SIZES
    ]
    body = "body{" + "".join(palette + sizes + spacing) + "}"
    return f'<style id="global-styles-inline-css">\n{body}\n' + "\n".join(rules) + "\n</style>"


def _head(base: str) -> str:
    """Head elements every heavy page carries, after the page's own."""
    theme = f"{base}/wp-content/themes/medguide"
    styles = [
        ("wp-block-library", f"{base}/wp-includes/css/dist/block-library/style.min.css"),
        ("classic-theme-styles", f"{base}/wp-includes/css/classic-themes.min.css"),
        ("medguide-style", f"{theme}/style.css"),
        ("medguide-fonts", "https://fonts.googleapis.com/css2?family=Lora:wght@400;700"),
        ("jetpack-sharing", f"{base}/wp-content/plugins/jetpack/modules/sharedaddy/sharing.css"),
        ("social-logos", f"{base}/wp-content/plugins/jetpack/_inc/social-logos/social-logos.css"),
    ]
    links = [
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="robots" content="index, follow, max-image-preview:large">',
        '<meta name="generator" content="WordPress 6.4.2">',
        '<meta property="og:locale" content="en_GB">',
        f'<meta property="og:site_name" content="{SITE_NAME}">',
        '<meta name="twitter:card" content="summary_large_image">',
        '<meta name="twitter:site" content="@medguidedemo">',
        '<meta name="theme-color" content="#1e5b8c">',
        '<link rel="profile" href="https://gmpg.org/xfn/11">',
        "<link rel='dns-prefetch' href='//fonts.googleapis.com'>",
        "<link rel='dns-prefetch' href='//stats.wp.com'>",
        "<link rel='preconnect' href='https://fonts.gstatic.com' crossorigin>",
        f'<link rel="alternate" type="application/rss+xml" title="{SITE_NAME} » Feed" '
        f'href="{base}/feed/">',
        f'<link rel="https://api.w.org/" href="{base}/wp-json/">',
        f'<link rel="icon" href="{theme}/icon-32.png" sizes="32x32">',
        f'<link rel="apple-touch-icon" href="{theme}/icon-180.png">',
        *(
            f"<link rel='stylesheet' id='{name}-css' href='{href}?ver=6.4.2' media='all'>"
            for name, href in styles
        ),
    ]
    config = {
        "ajaxurl": f"{base}/wp-admin/admin-ajax.php",
        "nonce": "5f3c2a9e1b",
        "i18n": {"menu": "Menu", "close": "Close", "search": "Search", "loadMore": "Load more"},
        "features": {"stickyHeader": True, "lazyImages": True, "darkMode": False},
    }
    return "\n".join(
        [
            *links,
            f"<script>{_EMOJI}</script>",
            _global_styles(),
            "<script id='medguide-config-js-extra'>var medguideConfig = "
            f"{json.dumps(config)};</script>",
        ]
    )


def _thumb(article: DemoArticle, base: str, size: int) -> str:
    """A lazily loaded thumbnail of an article's card image."""
    return (
        f'<img width="{size}" height="{size}" src="{base}/img/{article.slug}.jpg" '
        f'class="attachment-thumbnail size-thumbnail wp-post-image" alt="" loading="lazy" '
        f'decoding="async">'
    )


def _header(site: DemoSite, base: str, latest: dict[str, tuple[DemoArticle, ...]]) -> str:
    """Skip link, top bar, site branding and the mega menu (each topic's three newest posts)."""
    items = []
    for i, topic in enumerate(site.topics):
        posts = "".join(
            f'<li class="mega-post"><a href="{base}{a.path}">{esc(a.title)}</a></li>'
            for a in latest[topic.slug][:3]
        )
        items.append(
            f'    <li id="menu-item-{20 + i}" class="menu-item menu-item-type-taxonomy '
            f'menu-item-object-category menu-item-has-children mega-menu">'
            f'<a href="{base}/topics/{topic.slug}/">{esc(topic.name)}</a>\n'
            f'      <div class="sub-menu mega-panel"><ul class="mega-posts">{posts}</ul></div></li>'
        )
    menu = "\n".join(items)
    return f"""<a class="skip-link screen-reader-text" href="#main">Skip to content</a>
<div class="top-bar"><div class="top-bar-inner"><span class="tagline">Plain-English guides to
medicines</span><ul class="social-links"><li><a href="https://twitter.com/medguidedemo">Twitter</a>
</li><li><a href="https://www.facebook.com/medguidedemo">Facebook</a></li><li>
<a href="https://www.instagram.com/medguidedemo">Instagram</a></li></ul></div></div>
<header id="masthead" class="site-header">
  <div class="site-branding"><a class="site-title" href="{base}/" rel="home">{SITE_NAME}</a>
  <p class="site-description">Plain-English guides to medicines</p></div>
  <button class="menu-toggle" aria-controls="primary-menu" aria-expanded="false">Menu</button>
  <nav id="site-navigation" class="main-navigation"><ul id="primary-menu" class="menu">
{menu}
    <li class="menu-item"><a href="{base}/about/">About</a></li>
  </ul></nav>
</header>"""


def _widget(kind: str, title: str, inner: str) -> str:
    """One sidebar or footer widget."""
    return (
        f'<section class="widget {kind}"><h2 class="widget-title">{title}</h2>\n{inner}\n</section>'
    )


def _post_list(articles: tuple[DemoArticle, ...], base: str, with_thumbs: bool) -> str:
    """A widget's list of posts with their dates."""
    return (
        "<ul>\n"
        + "\n".join(
            f'<li>{_thumb(a, base, 60) if with_thumbs else ""}<a href="{esc(base + a.path)}">'
            f'{esc(a.title)}</a> <span class="post-date">{card_date(a.published)}</span></li>'
            for a in articles
        )
        + "\n</ul>"
    )


def _sidebar(site: DemoSite, base: str) -> str:
    """Search form, recent and popular posts, topic cloud, categories, authors, archives."""
    popular = tuple(sorted(site.articles, key=lambda a: -(a.comment_count or 0))[:5])
    counts = [len(t.article_slugs) for t in site.topics]
    biggest = max(counts, default=1) or 1
    cloud = " ".join(
        f'<a href="{base}/topics/{t.slug}/" class="tag-cloud-link" '
        f'style="font-size: {8 + 14 * n / biggest:.1f}pt;" aria-label="{esc(t.name)} ({n} items)">'
        f"{esc(t.name)}</a>"
        for t, n in zip(site.topics, counts, strict=True)
    )
    categories = "\n".join(
        f'<li class="cat-item"><a href="{base}/topics/{t.slug}/">{esc(t.name)}</a> ({n})</li>'
        for t, n in zip(site.topics, counts, strict=True)
    )
    authors = "\n".join(
        f'<li><a href="{base}/author/{slug}/">{esc(name)}</a></li>'
        for slug, name in site.authors.items()
    )
    months = sorted({a.published.strftime("%Y/%m") for a in site.articles}, reverse=True)
    options = "\n".join(f'<option value="{base}/{m}/">{m}</option>' for m in months)
    search = (
        f'<form role="search" method="get" class="search-form" action="{base}/search">'
        '<label><span class="screen-reader-text">Search for:</span><input type="search" '
        'class="search-field" placeholder="Search …" name="q"></label>'
        '<input type="submit" class="search-submit" value="Search"></form>'
    )
    recent = site.articles[:6]
    widgets = [
        _widget("widget_search", "Search", search),
        _widget("widget_recent_entries", "Recent Posts", _post_list(recent, base, False)),
        _widget("widget_popular_posts", "Most discussed", _post_list(popular, base, True)),
        _widget("widget_tag_cloud", "Topics", f'<div class="tagcloud">{cloud}</div>'),
        _widget("widget_categories", "Categories", f"<ul>\n{categories}\n</ul>"),
        _widget("widget_authors", "Our writers", f"<ul>\n{authors}\n</ul>"),
        _widget(
            "widget_archive",
            "Archives",
            '<select name="archive-dropdown" onchange="document.location.href=this.value;">'
            f'<option value="">Select Month</option>\n{options}</select>',
        ),
    ]
    inner = "\n".join(widgets)
    return f'<aside id="secondary" class="widget-area sidebar">\n{inner}\n</aside>'


def _footer(site: DemoSite, base: str) -> str:
    """Footer widgets, newsletter form, copyright (the misleading date) and trailing scripts."""
    topics = "\n".join(
        f'<li><a href="{base}/topics/{t.slug}/">{esc(t.name)}</a></li>' for t in site.topics
    )
    newsletter = (
        '<form class="newsletter" method="post" action="https://lists.example.com/subscribe">'
        '<input type="email" name="email" placeholder="Your email" required>'
        '<input type="hidden" name="list" value="medguide-weekly">'
        '<button type="submit">Subscribe</button></form>'
    )
    return f"""<footer id="colophon" class="site-footer">
<div class="footer-widgets">
{_widget("widget_text", "About us", f"<p>{SITE_NAME} explains medicines in plain English.</p>")}
{_widget("widget_nav_menu", "Browse", f"<ul>{topics}</ul>")}
{_widget("widget_newsletter", "Weekly email", newsletter)}
</div>
<div class="site-info"><p>{FOOTER_TEXT}</p><a href="{base}/about/">About</a></div>
</footer>
{_COOKIE_BANNER}
<script src='{base}/wp-content/themes/medguide/js/navigation.js?ver=1.4.2' id='medguide-nav-js'>
</script>
<script src='{base}/wp-includes/js/comment-reply.min.js?ver=6.4.2' id='comment-reply-js' async>
</script>
<script>{_ANALYTICS}</script>"""


def heavy_document(site: DemoSite, base: str, frame: Frame) -> str:
    """A whole heavy page: the frame's head and main inside the theme's chrome.

    Args:
        site: the site model (menu topics, widgets).
        base: the base URL links are built from.
        frame: the page-specific parts.

    Returns:
        The page's HTML.
    """
    chrome = _chrome(site, base)
    head = "\n".join(frame.head)
    return f"""<!doctype html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<title>{esc(frame.title)} – {SITE_NAME}</title>
{head}
{chrome.head}
</head>
<body class="{frame.body_class} wp-embed-responsive has-sidebar">
<div id="page" class="site">
{chrome.header}
<div id="content" class="site-content">
<main id="main" class="site-main">
{frame.main}
</main>
{chrome.sidebar}
</div>
{chrome.footer}
</div>
</body></html>
"""


def article_extras(site: DemoSite, base: str, article: DemoArticle) -> tuple[str, str, str]:
    """What a heavy article page adds: (breadcrumbs, sharing buttons, after-article blocks).

    The sharing buttons go inside ``entry-content`` (as Jetpack puts them); after the article
    come the author box, three related posts and the previous/next post links.
    """
    topic_url = f"{base}/topics/{article.topic_slugs[0]}/"
    crumbs = (
        f'<nav class="breadcrumbs" aria-label="Breadcrumb"><a href="{base}/">Home</a> » '
        f'<a href="{topic_url}">{esc(article.topics[0])}</a> » '
        f'<span class="breadcrumb_last">{esc(article.title)}</span></nav>'
    )
    url = esc(base + article.path)
    share = "".join(
        f'<li class="share-{name}"><a rel="nofollow noopener noreferrer" class="share-{name} '
        f'sd-button share-icon" href="{href}{url}" target="_blank" title="Share on {label}">'
        f"<span>{label}</span></a></li>"
        for name, label, href in (
            ("twitter", "Twitter", "https://twitter.com/intent/tweet?url="),
            ("facebook", "Facebook", "https://www.facebook.com/sharer.php?u="),
            ("linkedin", "LinkedIn", "https://www.linkedin.com/shareArticle?url="),
            ("reddit", "Reddit", "https://reddit.com/submit?url="),
        )
    )
    sharing = (
        '<div class="sharedaddy sd-sharing-enabled"><h3 class="sd-title">Share this:</h3>'
        f'<div class="sd-content"><ul>{share}</ul></div></div>'
    )
    return crumbs, sharing, _after_article(site, base, article)


def _after_article(site: DemoSite, base: str, article: DemoArticle) -> str:
    """Author box, related posts (same first topic) and previous/next links."""
    chrome = _chrome(site, base)
    same = [a for a in chrome.latest[article.topic_slugs[0]] if a.slug != article.slug]
    related = "".join(
        f'<div class="jp-relatedposts-post"><a href="{base}{a.path}">{_thumb(a, base, 150)}'
        f"<h4>{esc(a.title)}</h4></a><p>{esc(a.summary)}</p></div>"
        for a in same[:3]
    )
    index = chrome.positions.get(article.slug, -1)
    neighbours = []
    if index > 0:
        newer = site.articles[index - 1]
        neighbours.append(f'<a href="{base}{newer.path}" rel="next">{esc(newer.title)}</a>')
    if 0 <= index < len(site.articles) - 1:
        older = site.articles[index + 1]
        neighbours.append(f'<a href="{base}{older.path}" rel="prev">{esc(older.title)}</a>')
    return (
        f'<div class="author-bio"><h2 class="author-title">About the writer</h2>'
        f"<p>Writes plain-English guides for {SITE_NAME}. "
        f'<a href="{base}/author/{article.author_slug}/">All posts</a></p></div>\n'
        f'<div class="jp-relatedposts"><h3 class="jp-relatedposts-headline">Related</h3>'
        f"{related}</div>\n"
        f'<nav class="navigation post-navigation"><div class="nav-links">{" ".join(neighbours)}'
        "</div></nav>"
    )


def _all_comments(article: DemoArticle, shown: int) -> list[DemoComment]:
    """The article's own comments, then made-up ones up to ``shown``, oldest first."""
    rng = random.Random(article.post_id)
    extra = [
        DemoComment(
            rng.choice(READERS),
            article.published + timedelta(minutes=rng.randint(30, 60 * 24 * 60)),
            " ".join(rng.sample(_EXTRA_COMMENTS, rng.randint(1, 3))),
        )
        for _ in range(max(0, shown - len(article.comments)))
    ]
    return sorted([*article.comments, *extra], key=lambda c: c.posted)


def _comment(article: DemoArticle, url: str, number: int, comment: DemoComment) -> str:
    """One comment with avatar, permalink, text and reply link."""
    cid = article.post_id * 1000 + number
    avatar = hashlib.md5(comment.author.encode()).hexdigest()
    name = esc(comment.author)
    when = comment.posted
    hour = when.hour % 12 or 12
    stamp = f"{card_date(when)} at {hour}:{when.minute:02d} {'am' if when.hour < 12 else 'pm'}"
    return f"""    <li id="comment-{cid}" class="comment {"even" if number % 2 else "odd"} depth-1">
      <article id="div-comment-{cid}" class="comment-body"><footer class="comment-meta">
        <div class="comment-author vcard"><img alt="" src="https://secure.gravatar.com/avatar/\
{avatar}?s=56&amp;d=mm&amp;r=g" class="avatar avatar-56 photo" height="56" width="56" \
loading="lazy" decoding="async"><b class="fn">{name}</b> <span class="says">says:</span></div>
        <div class="comment-metadata"><a href="{url}#comment-{cid}"><time datetime="\
{when.isoformat()}">{stamp}</time></a></div></footer>
        <div class="comment-content"><p>{esc(comment.text)}</p></div>
        <div class="reply"><a rel="nofollow" class="comment-reply-link" href="#respond" \
data-commentid="{cid}" data-postid="{article.post_id}" aria-label="Reply to {name}">Reply</a></div>
      </article></li>"""


def comments_section(article: DemoArticle, base: str) -> str:
    """The heavy comments area: the count's title, the first page of comments, the reply form.

    Args:
        article: the article (its ``comment_count`` is the title's and the record's count).
        base: the base URL links are built from.

    Returns:
        The section's HTML.
    """
    count = article.comment_count
    if count is None:
        closed = '<p class="no-comments">Comments are closed.</p>'
        return f'<section id="comments" class="comments-area">{closed}</section>'
    url = esc(base + article.path)
    form = f"""<div id="respond" class="comment-respond">
  <h3 id="reply-title" class="comment-reply-title">Leave a Reply</h3>
  <form action="{base}/wp-comments-post.php" method="post" id="commentform" class="comment-form">
    <p class="comment-notes">Your email address will not be published. Required fields are marked
    <span class="required">*</span></p>
    <p class="comment-form-comment"><label for="comment">Comment</label>
    <textarea id="comment" name="comment" cols="45" rows="8" maxlength="65525" required></textarea>
    </p><p class="comment-form-author"><label for="author">Name</label>
    <input id="author" name="author" type="text" size="30" maxlength="245" required></p>
    <p class="comment-form-email"><label for="email">Email</label>
    <input id="email" name="email" type="email" size="30" maxlength="100" required></p>
    <p class="comment-form-cookies-consent"><input id="wp-comment-cookies-consent"
    name="wp-comment-cookies-consent" type="checkbox" value="yes"><label
    for="wp-comment-cookies-consent">Save my name and email in this browser.</label></p>
    <p class="form-submit"><input name="submit" type="submit" id="submit" class="submit"
    value="Post Comment"><input type="hidden" name="comment_post_ID" value="{article.post_id}"
    id="comment_post_ID"><input type="hidden" name="comment_parent" id="comment_parent" value="0">
    </p></form>
</div>"""
    if count == 0:
        title = '<h2 class="comments-title">No comments yet</h2>'
        return f'<section id="comments" class="comments-area">\n{title}\n{form}\n</section>'
    shown = _all_comments(article, min(count, COMMENTS_SHOWN))
    items = "\n".join(_comment(article, url, n, c) for n, c in enumerate(shown, 1))
    more = ""
    if count > len(shown):
        more = (
            f'<button class="load-more-comments" data-post="{article.post_id}" data-page="2">'
            f"Load {count - len(shown)} more comments</button>"
        )
    noun = "thought" if count == 1 else "thoughts"
    return f"""<section id="comments" class="comments-area">
  <h2 class="comments-title">{count} {noun} on “{esc(article.title)}”</h2>
  <ol class="comment-list">
{items}
  </ol>
  {more}
{form}
</section>"""
