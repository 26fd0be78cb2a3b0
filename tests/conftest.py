"""Shared fixtures: a clean environment, the demo site served on loopback, and settings for it.

Tests never touch the internet: pytest-socket (``--allow-hosts=127.0.0.1`` in pyproject.toml)
fails any other connection, and every server here binds 127.0.0.1 on a free port.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.config import Settings, load_settings
from pipeline.demo import DemoServer, DemoSite, build_site

_PROXY_VARS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CRAWLDEX_* settings or proxies leak in from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("CRAWLDEX_") or name in _PROXY_VARS:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def demo_site() -> DemoSite:
    """The full default demo site (200 articles, 8 topics)."""
    return build_site()


@pytest.fixture(scope="session")
def small_site() -> DemoSite:
    """A smaller demo site for tests that crawl several times."""
    return build_site(articles=40, topics=4)


@pytest.fixture
def small_server(small_site: DemoSite) -> Iterator[DemoServer]:
    """A fresh server of the small site per test (its request log starts empty)."""
    with DemoServer(small_site) as server:
        yield server


def crawl_settings(data_dir: Path, base_url: str, **crawl: object) -> Settings:
    """Settings for crawling a loopback demo server into ``data_dir`` quickly."""
    overrides = {
        "storage.dir": str(data_dir),
        "crawl.delay": 0,
        "crawl.concurrency": 8,
        "crawl.per_host_concurrency": 8,
        "crawl.retries": 0,
        # The recrawl policy is off unless a test turns it on (tests/pipeline/test_recrawl.py):
        # every walk is a full walk and every article page is always due.
        "crawl.full_walk_every": "0s",
        "crawl.refetch_min": "0s",
    }
    overrides.update({f"crawl.{k}": v for k, v in crawl.items()})
    settings = load_settings(None, overrides=overrides)
    site = {"name": "demo", "start_urls": [f"{base_url}/"], "timezone": "Europe/London"}
    return settings.model_validate({**settings.model_dump(), "sites": [site]})
