"""``Document.regions`` decides an element at a time what ``region_ids`` selects with lexbor.

hypothesis draws small pages (nested elements whose tags, classes, ids and roles come from the
selector lists the extractors use, in odd cases and with odd whitespace, with and without a
doctype, so in quirks mode too) and the test compares, for every element of the page, whether
``is_inside`` finds it in a region through ``regions`` and through lexbor's ``region_ids``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborNode

from pipeline.extract.dom import Document, Regions, SimpleSelectors, is_inside, parse_document
from pipeline.extract.selectors import NOISE_OR_COMMENTS, SITE_TITLE

QUERIES = (NOISE_OR_COMMENTS, SITE_TITLE, "div > p, .sidebar")  # the last is not simple
TAGS = ("div", "section", "span", "p", "aside", "nav", "header", "ul", "li")
NAMES = ("sidebar", "SideBar", "comments", "Comments", "site-title", "LOGO", "widget-area",
         "share", "sharedaddy", "post", "entry-content", "h-cite", "comment-list")  # fmt: skip
SPACES = (" ", "\t", "\n", "\xa0", "\x0c", "\x1c", "  ")
ROLES = ("navigation", "Navigation", "main", "complementary", "banner")


@st.composite
def _attributes(draw: Any) -> str:
    parts = []
    if draw(st.booleans()):
        tokens = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3))
        glue = draw(st.sampled_from(SPACES))
        parts.append(f'class="{glue.join(tokens)}"')
    if draw(st.integers(0, 3)) == 0:
        parts.append(f'id="{draw(st.sampled_from(NAMES))}"')
    if draw(st.integers(0, 3)) == 0:
        parts.append(f'role="{draw(st.sampled_from(ROLES))}"')
    if draw(st.integers(0, 5)) == 0:
        parts.append('itemprop="comment"')
    return " ".join(parts)


@st.composite
def _element(draw: Any, depth: int = 0) -> str:
    tag = draw(st.sampled_from(TAGS))
    inner = ["x"]
    if depth < 4:
        inner += draw(st.lists(_element(depth + 1), max_size=3))
    return f"<{tag} {draw(_attributes())}>{''.join(inner)}</{tag}>"


@st.composite
def _page(draw: Any) -> str:
    doctype = "<!DOCTYPE html>" if draw(st.booleans()) else ""
    body = "".join(draw(st.lists(_element(), min_size=1, max_size=3)))
    html, body_attributes = draw(_attributes()), draw(_attributes())
    head = "<head><title>t</title></head>"
    return f"{doctype}<html {html}>{head}<body {body_attributes}>{body}</body></html>"


def _elements(doc: Document) -> list[LexborNode]:
    return [node for node in doc.root.traverse() if node.is_element_node]


@settings(max_examples=150, deadline=None)
@given(_page(), st.sampled_from(QUERIES), st.integers(0, 1000), st.booleans())
def test_regions_agree_with_lexbor(html: str, query: str, pick: int, under_body: bool) -> None:
    doc = parse_document(html, "http://example.test/")
    within = doc.body if under_body else doc.root
    elements = _elements(doc)
    also = {elements[pick % len(elements)].mem_id}
    never = {elements[(pick // 7) % len(elements)].mem_id}
    expected = (doc.region_ids(within, query) | also) - never
    lazy = Document(doc.tree, doc.url).regions(within, query, also=also, never=never)
    for node in elements:
        assert is_inside(node, lazy) == is_inside(node, expected), (node.tag, node.attributes)
        stop = node.parent
        if stop is not None:
            assert is_inside(node, lazy, stop) == is_inside(node, expected, stop)
    # what ``covers`` remembered is forgotten when more elements are kept out
    kept = {elements[(pick // 3) % len(elements)].mem_id}
    lazy.keep(kept)
    for node in reversed(elements):
        assert is_inside(node, lazy) == is_inside(node, expected - kept)


def test_simple_selectors_parse_only_simple_lists() -> None:
    simple = SimpleSelectors.parse("aside, .share, #comments, [role=banner]")
    assert simple is not None
    assert simple.tags == {"aside"}
    assert simple.classes == {"share"}
    assert simple.ids == {"comments"}
    assert simple.attributes == (("role", "banner"),)
    for query in ("div > p", ".a .b", "a[href]", "[itemtype*=Article]", "p:first-child", ".a.b"):
        assert SimpleSelectors.parse(query) is None, query


def test_unsure_matches_ask_lexbor() -> None:
    """Case folding only in quirks mode: the same markup is a region in one mode, not the other."""
    markup = '<html><body><div class="SideBar"><p>x</p></div></body></html>'
    for doctype, region in (("", True), ("<!DOCTYPE html>", False)):
        doc = parse_document(doctype + markup, "http://example.test/")
        paragraph = doc.root.css_first("p")
        assert SimpleSelectors.parse(".sidebar").verdict(paragraph.parent) is None  # type: ignore[union-attr]
        assert is_inside(paragraph, doc.regions(doc.body, ".sidebar")) is region


def test_regions_ask_lexbor_only_when_unsure() -> None:
    """A page whose classes are plain lowercase is decided without selecting the regions."""
    html = '<!DOCTYPE html><body><aside class="widget"><p id="a">x</p></aside><p id="b">y</p>'
    doc = parse_document(html, "http://example.test/")
    regions = doc.regions(doc.body, NOISE_OR_COMMENTS)
    assert isinstance(regions, Regions)
    assert is_inside(doc.root.css_first("#a"), regions)
    assert not is_inside(doc.root.css_first("#b"), regions)
    assert not doc._regions  # region_ids was never needed
