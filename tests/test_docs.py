"""The README documents every command and every setting, and every command has help."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from pipeline.cli import cli
from pipeline.config import Settings, SiteConfig

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CONFIG_YAML = (ROOT / "config.yaml").read_text(encoding="utf-8")


def _setting_keys() -> list[str]:
    keys = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            keys += [f"{section}.{name}" for name in model.model_fields]
    keys += [f"sites[].{name}" for name in SiteConfig.model_fields]
    return keys


def _commands() -> list[str]:
    names = []
    for name, command in cli.commands.items():
        sub = getattr(command, "commands", None)
        names += [f"{name} {s}" for s in sub] if sub else [name]
    return names


@pytest.mark.parametrize("key", _setting_keys())
def test_every_setting_is_documented_in_the_readme(key):
    assert f"`{key}`" in README


@pytest.mark.parametrize("key", [k for k in _setting_keys() if not k.startswith("sites")])
def test_every_setting_appears_in_config_yaml(key):
    section, name = key.split(".")
    assert f"{section}:" in CONFIG_YAML
    assert f"  {name}:" in CONFIG_YAML


@pytest.mark.parametrize("command", _commands())
def test_every_command_is_documented_and_has_help_with_an_example(command):
    assert f"`crawldex {command}" in README
    result = CliRunner().invoke(cli, [*command.split(), "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ".venv/bin/python -m pytest" in README
    assert ".venv/bin/python -m pytest" in ci


def test_error_tree_in_readme_matches_errors_module():
    import pipeline.errors as errors

    for name in errors.__all__:
        assert name in README, name
