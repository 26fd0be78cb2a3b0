"""The bundled demo site: a deterministic health blog, its truth, and a loopback server for it.

``build_site`` generates the site model (``content``), ``render_path`` turns a URL into a page
(``render`` with ``pages`` and ``article_page``), and ``DemoServer`` serves it with validators,
gzip and a request log (``server``). ``DemoSite.expected_articles`` / ``expected_topics`` say what
a correct crawl must produce. The markup follows the shared demo markup spec.

    with DemoServer(build_site()) as server:
        truth = server.site.expected_articles(server.base_url)
"""

from __future__ import annotations

from pipeline.demo.content import (
    ANCHOR,
    DEMO_TIMEZONE,
    SITE_NAME,
    DemoArticle,
    DemoComment,
    DemoSite,
    DemoTopic,
    InlineSpan,
    build_site,
)
from pipeline.demo.render import Response, render_path
from pipeline.demo.server import (
    DemoServer,
    Handler,
    RequestHeaders,
    RequestInfo,
    RequestRecord,
    serve_forever_blocking,
)

__all__ = [
    "ANCHOR",
    "DEMO_TIMEZONE",
    "SITE_NAME",
    "DemoArticle",
    "DemoComment",
    "DemoServer",
    "DemoSite",
    "DemoTopic",
    "Handler",
    "InlineSpan",
    "RequestHeaders",
    "RequestInfo",
    "RequestRecord",
    "Response",
    "build_site",
    "render_path",
    "serve_forever_blocking",
]
