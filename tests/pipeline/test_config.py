"""Config: defaults, YAML, environment and flag precedence, and one clear line per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import Settings, load_settings
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_config_yaml_states_the_defaults():
    shipped = load_settings(ROOT / "config.yaml")
    defaults = Settings()
    assert shipped.crawl == defaults.crawl
    assert shipped.index == defaults.index
    assert shipped.export.dir is None
    assert shipped.sites == []


def test_precedence_defaults_file_environment_flags(tmp_path):
    path = write(tmp_path, "crawl:\n  delay: 2\n  timeout: 5\n  max_pages: 7\n")
    settings = load_settings(
        path,
        environ={"CRAWLDEX_CRAWL__TIMEOUT": "6", "CRAWLDEX_CRAWL__MAX_PAGES": "8"},
        overrides={"crawl.max_pages": 9, "crawl.concurrency": None},
    )
    assert settings.crawl.delay == 2.0  # file over default
    assert settings.crawl.timeout == 6.0  # environment over file
    assert settings.crawl.max_pages == 9  # flag over environment
    assert settings.crawl.concurrency == 8  # an unset flag changes nothing


def test_relative_storage_dir_is_relative_to_the_config_file(tmp_path):
    path = write(tmp_path, "storage:\n  dir: data\n")
    assert load_settings(path).storage.dir == tmp_path / "data"
    assert load_settings(path).export_dir == tmp_path / "data" / "exports"


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            "crawl:\n  dely: 2\n",
            ["unknown key 'crawl.dely'", "did you mean 'crawl.delay'", "Valid keys here"],
        ),
        ("crawl:\n  delay: -1\n", ["crawl.delay", "greater than or equal to 0"]),
        ("crawl:\n  concurrency: lots\n", ["crawl.concurrency", "'lots'"]),
        (
            "sites:\n - name: x\n   start_urls: [ftp://a]\n",
            ["sites.0.start_urls", "not an absolute http(s) URL"],
        ),
        (
            "sites:\n - name: x\n   start_urls: [http://a/]\n   timezone: Mars/Base\n",
            ["unknown timezone 'Mars/Base'"],
        ),
        (
            "sites:\n - name: x\n   start_urls: [http://a/]\n   exclude: ['(']\n",
            ["not a valid regex"],
        ),
        (
            "sites:\n - {name: x, start_urls: [http://a/]}\n - {name: x, start_urls: [http://b/]}\n",
            ["unique", "x"],
        ),
        ("crawl: [1, 2\n", ["invalid YAML", "line"]),
        ("- just\n- a list\n", ["top level must be a mapping"]),
    ],
)
def test_mistakes_give_one_clear_line_naming_file_and_key(tmp_path, text, fragments):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_missing_file_says_how_to_choose_one(tmp_path):
    with pytest.raises(ConfigError, match="CRAWLDEX_CONFIG"):
        load_settings(tmp_path / "nope.yaml")


def test_unknown_site_lists_the_configured_ones(tmp_path):
    settings = load_settings(
        write(tmp_path, "sites:\n - {name: blog, start_urls: ['http://a/']}\n")
    )
    with pytest.raises(ConfigError, match="configured sites: blog"):
        settings.site("nope")
