"""The SQL linter renders models with a copy of dbt's vars: the copy must be dbt's."""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_the_linters_copy_of_the_dbt_vars_is_dbt_project_yml_s():
    config = configparser.ConfigParser()
    config.read(ROOT / ".sqlfluff")
    copied = ast.literal_eval(config["sqlfluff:templater:jinja:context"]["dbt_vars"])
    dbt_vars = yaml.safe_load((ROOT / "dbt_project.yml").read_text())["vars"]
    assert copied == dbt_vars
