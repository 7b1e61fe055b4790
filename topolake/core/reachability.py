"""Servers a session depends on, checked before Spark is asked to use them.

Spark waits a long time for a standalone master that is not there, and a JDBC catalog that
cannot connect fails deep in the first query with a Java stack trace. A socket and, for
PostgreSQL, one login say what is wrong at once, in one sentence with what to do.
"""

from __future__ import annotations

import socket
from urllib.parse import urlparse

from topolake.core.settings import ConfigurationError, Settings

TIMEOUT_S = 3.0


def _refused(host: str, port: int) -> str | None:
    """Why a TCP connection to host:port fails, or None if it succeeds."""
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S):
            return None
    except OSError as err:
        return err.strerror or type(err).__name__


def host_port(url: str, default_port: int) -> tuple[str, int]:
    """spark://host:port or jdbc:postgresql://host:port/db -> (host, port)."""
    parsed = urlparse(url.removeprefix("jdbc:"))
    return parsed.hostname or "127.0.0.1", parsed.port or default_port


def check_master(master: str) -> None:
    if not master.startswith("spark://") or "," in master:  # several masters (HA): Spark's job
        return
    try:
        host, port = host_port(master, 7077)
    except ValueError as err:
        raise ConfigurationError(f"The Spark master {master} is not spark://HOST:PORT.") from err
    if why := _refused(host, port):
        raise ConfigurationError(
            f"The Spark master {master} is not reachable ({why}): start one with "
            "`topolake cluster start`, or point --master / SPARK_MASTER at a running master."
        )


def check_catalog(settings: Settings) -> None:
    """The JDBC catalog's PostgreSQL answers, and accepts the user and password."""
    if settings.catalog_type != "jdbc":
        return
    try:
        host, port = host_port(settings.catalog_uri, 5432)
    except ValueError as err:
        raise ConfigurationError(
            f"TOPOLAKE_CATALOG_URI={settings.catalog_uri} is not jdbc:postgresql://HOST:PORT/DB."
        ) from err
    if why := _refused(host, port):
        raise ConfigurationError(
            f"The catalog's PostgreSQL at {host}:{port} refuses connections ({why}): start it "
            "with `topolake services start`, or fix TOPOLAKE_CATALOG_URI."
        )
    import psycopg2

    database = urlparse(settings.catalog_uri.removeprefix("jdbc:")).path.lstrip("/")
    try:
        psycopg2.connect(
            host=host,
            port=port,
            dbname=database,
            user=settings.catalog_user,
            password=settings.catalog_password,
            connect_timeout=int(TIMEOUT_S),
        ).close()
    except psycopg2.OperationalError as err:
        reason = str(err).strip().splitlines()[-1].removeprefix("FATAL:").strip()
        raise ConfigurationError(
            f"The catalog's PostgreSQL at {host}:{port} refused user "
            f"{settings.catalog_user!r} on database {database!r} ({reason}): check "
            "TOPOLAKE_CATALOG_USER and TOPOLAKE_CATALOG_PASSWORD (`topolake services env`)."
        ) from err


def check_reachable(settings: Settings) -> None:
    check_master(settings.master)
    check_catalog(settings)
