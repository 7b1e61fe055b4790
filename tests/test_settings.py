"""Where settings come from: an argument, else the environment, else the default (fast)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from topolake.core.settings import ConfigurationError, load_settings
from topolake.core.spark import spark_properties

VARIABLES = (
    "TOPOLAKE_HOME",
    "SPARK_MASTER",
    "TOPOLAKE_WAREHOUSE",
    "TOPOLAKE_DRIVER_MEMORY",
    "TOPOLAKE_SHUFFLE_PARTITIONS",
    "MLFLOW_TRACKING_URI",
    "TOPOLAKE_EXECUTOR_CORES",
    "TOPOLAKE_CORES_MAX",
)


@pytest.fixture
def clean(monkeypatch, tmp_path) -> Path:
    """No topolake variable set, the current directory an empty one; yields it."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path.resolve()


def test_without_arguments_or_environment_the_defaults_hold(clean):
    settings = load_settings()
    assert settings.home == clean / "lakehouse"
    assert settings.master == "local[*]"
    assert settings.warehouse == str(clean / "lakehouse" / "warehouse")
    assert (settings.driver_memory, settings.shuffle_partitions) == ("6g", 8)
    assert settings.tracking_uri == f"sqlite:///{clean / 'lakehouse' / 'mlflow.db'}"
    assert settings.spark_conf_dir == clean / "lakehouse" / "conf"
    assert settings.logs_dir == clean / "lakehouse" / "logs"


def test_the_environment_overrides_the_defaults(clean, monkeypatch):
    monkeypatch.setenv("TOPOLAKE_HOME", str(clean / "env-home"))
    monkeypatch.setenv("SPARK_MASTER", "local[3]")
    monkeypatch.setenv("TOPOLAKE_WAREHOUSE", "s3a://bucket/warehouse")
    monkeypatch.setenv("TOPOLAKE_DRIVER_MEMORY", "2g")
    monkeypatch.setenv("TOPOLAKE_SHUFFLE_PARTITIONS", "3")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    settings = load_settings()
    assert (settings.home, settings.master) == (clean / "env-home", "local[3]")
    assert settings.warehouse == "s3a://bucket/warehouse"
    assert (settings.driver_memory, settings.shuffle_partitions) == ("2g", 3)
    assert settings.tracking_uri == "http://127.0.0.1:5000"


def test_arguments_override_the_environment(clean, monkeypatch):
    monkeypatch.setenv("TOPOLAKE_HOME", str(clean / "env-home"))
    monkeypatch.setenv("SPARK_MASTER", "local[3]")
    settings = load_settings(master="spark://head:7077", home=clean / "arg-home")
    assert (settings.home, settings.master) == (clean / "arg-home", "spark://head:7077")
    assert settings.warehouse == str(clean / "arg-home" / "warehouse")  # follows the home


def test_empty_variables_count_as_unset(clean, monkeypatch):
    monkeypatch.setenv("TOPOLAKE_HOME", "")
    monkeypatch.setenv("SPARK_MASTER", "")
    monkeypatch.setenv("TOPOLAKE_WAREHOUSE", "")
    settings = load_settings()
    assert (settings.home, settings.master) == (clean / "lakehouse", "local[*]")
    assert settings.warehouse == str(clean / "lakehouse" / "warehouse")


def test_a_relative_or_user_home_is_made_absolute(clean, monkeypatch):
    assert load_settings(home="lakes/a").home == clean / "lakes" / "a"
    monkeypatch.setenv("HOME", str(clean / "user"))
    assert load_settings(home="~/lake").home == clean / "user" / "lake"


def test_spark_gets_the_settings_and_a_spelt_out_local_master(clean):
    properties = spark_properties(load_settings(master="local[*]"))
    assert properties["spark.master"] == f"local[{os.cpu_count()}]"
    assert properties["spark.sql.catalog.lake.warehouse"] == str(clean / "lakehouse" / "warehouse")
    assert properties["spark.executorEnv.TOPOLAKE_HOME"] == str(clean / "lakehouse")
    assert spark_properties(load_settings(master="local[2]"))["spark.master"] == "local[2]"


def test_a_standalone_master_gets_fixed_executors_and_the_total_cores_when_given(
    clean, monkeypatch
):
    local = spark_properties(load_settings(master="local[2]"))
    assert not {"spark.executor.cores", "spark.cores.max"} & set(local)
    standalone = spark_properties(load_settings(master="spark://127.0.0.1:7077"))
    assert standalone["spark.executor.cores"] == "1"
    assert "spark.cores.max" not in standalone  # every free core, as Spark's default
    monkeypatch.setenv("TOPOLAKE_CORES_MAX", "4")
    monkeypatch.setenv("TOPOLAKE_EXECUTOR_CORES", "2")
    sized = spark_properties(load_settings(master="spark://127.0.0.1:7077"))
    assert (sized["spark.executor.cores"], sized["spark.cores.max"]) == ("2", "4")


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_core_count_that_is_not_a_positive_number_is_refused(clean, monkeypatch, value):
    monkeypatch.setenv("TOPOLAKE_CORES_MAX", value)
    with pytest.raises(ConfigurationError, match=f"TOPOLAKE_CORES_MAX='{value}' is not a positive"):
        load_settings()
