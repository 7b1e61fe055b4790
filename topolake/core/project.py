"""Where topolake's own files are: the dbt project, the GX context and the tuning grids.

These files are part of the code, not state: the models a build runs, the suites a gate
checks. They are found through the installed packages, never through the current directory,
so `topolake` works from anywhere:

* from a source checkout (an editable install) they are the repository's own files, so an
  edit to a model or a suite takes effect at once;
* from an installed wheel there is no repository: the wheel carries the dbt project
  (dbt_project.yml, profiles.yml, models/, macros/, tests/dbt/) and grids/ under
  ``topolake/_project/`` with the repository's layout (the ``force-include`` table in
  pyproject.toml), and the GX context as package data of the ``expectations`` package
  (``expectations/gx``), where it lives in the repository too.

Whatever these functions return is read only: site-packages may not be writable, so dbt's
target and logs, GX's validation results and Data Docs all go under TOPOLAKE_HOME instead.
"""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path

from topolake.core.settings import ConfigurationError

__all__ = [
    "SHIPPED_DIR",
    "dbt_profiles_dir",
    "dbt_project_dir",
    "grids_dir",
    "gx_context_dir",
    "project_dir",
    "source_root",
]

#: Where a wheel keeps the project files, inside the topolake package (pyproject.toml).
SHIPPED_DIR = "_project"
#: The file that makes a directory a dbt project, in a checkout and in the shipped copy alike.
DBT_PROJECT_FILE = "dbt_project.yml"
GX_CONFIG_FILE = "great_expectations.yml"


def _package_dir() -> Path:
    """The directory the `topolake` package was imported from (a checkout or site-packages)."""
    return Path(str(resources.files("topolake")))


def source_root() -> Path | None:
    """The repository root when topolake runs from a source checkout; None from a wheel.

    A checkout is recognised by the files a wheel never puts beside its packages.
    """
    root = _package_dir().resolve().parent
    if (root / "pyproject.toml").is_file() and (root / DBT_PROJECT_FILE).is_file():
        return root
    return None


def project_dir() -> Path:
    """The directory laid out like the repository root: dbt_project.yml, models/, grids/..."""
    root = source_root()
    if root is not None:
        return root
    shipped = _package_dir() / SHIPPED_DIR
    if (shipped / DBT_PROJECT_FILE).is_file():
        return shipped
    raise ConfigurationError(
        f"topolake's project files are missing: no {DBT_PROJECT_FILE} in a source checkout "
        f"or in {shipped}; reinstall topolake from its wheel or run it from the repository."
    )


def dbt_project_dir() -> Path:
    """dbt's --project-dir: dbt_project.yml with models/, macros/ and tests/dbt/ beside it."""
    return project_dir()


def dbt_profiles_dir() -> Path:
    """DBT_PROFILES_DIR: profiles.yml ships beside dbt_project.yml."""
    return project_dir()


def grids_dir() -> Path:
    """The tuning grids (YAML) that ship with topolake, e.g. hlf-small.yaml."""
    return project_dir() / "grids"


def gx_context_dir() -> Path:
    """The GX file context (great_expectations.yml, suites, checkpoints): package data of
    the `expectations` package, located without importing it (core imports no stage)."""
    spec = importlib.util.find_spec("expectations")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        context = Path(location) / "gx"
        if (context / GX_CONFIG_FILE).is_file():
            return context
    raise ConfigurationError(
        f"topolake's Great Expectations context is missing: no gx/{GX_CONFIG_FILE} in the "
        f"expectations package ({', '.join(locations) or 'not installed'}); reinstall topolake."
    )
