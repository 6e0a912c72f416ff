"""The four services as real processes against the session's Kafka and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from playwright.async_api import Browser, async_playwright
from psycopg import sql

from journeys_runtime.topics import Topics
from journeys_stack.ports import free_port
from journeys_stack.services import Ports
from journeys_stack.stack import Stack as LocalStack
from journeys_stack.stack import StackConfig
from journeys_stack.supervisor import Supervisor
from tests.e2e.browser import OUTPUT, chromium
from tests.e2e.oidc_provider import Provider


@dataclass
class Stack:
    api_url: str
    api_key: str
    kafka_bootstrap: str
    topics: Topics
    supervisor: Supervisor
    log_dir: Path
    ports: Ports
    database_url: str


@contextmanager
def running_stack(
    kafka_bootstrap: str,
    admin_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    service_env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """The four services on a database and topic prefix of their own, `service_env` added to
    every service's environment."""
    name = f"e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    database_url = psycopg.conninfo.make_conninfo(admin_database_url, dbname=name)
    data_dir = tmp_path_factory.mktemp("stack")
    ports = Ports(api=free_port(), executor=free_port(), scheduler=free_port(),
                  projector=free_port(), delivery=free_port(), importer=free_port())  # fmt: skip
    local = LocalStack(
        StackConfig(
            data_dir=data_dir,
            ports=ports,
            topic_prefix=f"{name}.",
            kafka_bootstrap=kafka_bootstrap,
            database_url=database_url,
            service_env={"DELIVERY_CONSOLE_REVEAL_PATIENT_DATA": "false", **(service_env or {})},
        )
    )
    local.start()
    assert local.supervisor is not None
    try:
        yield Stack(
            api_url=f"http://127.0.0.1:{ports.api}",
            api_key=local.api_key,
            kafka_bootstrap=kafka_bootstrap,
            topics=local.topics,
            supervisor=local.supervisor,
            log_dir=data_dir / "logs",
            ports=ports,
            database_url=database_url,
        )
    finally:
        local.stop()


@pytest.fixture(scope="session")
def issuer() -> Iterator[Provider]:
    """An OpenID Connect issuer on loopback, which the shared stack trusts: the console signs
    people in through it, and the API takes its access tokens."""
    provider = Provider()
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="session")
def stack(
    kafka_bootstrap: str,
    admin_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    issuer: Provider,
) -> Iterator[Stack]:
    with running_stack(kafka_bootstrap, admin_database_url, tmp_path_factory,
                       issuer.env()) as running:  # fmt: skip
        yield running


@asynccontextmanager
async def api_client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=50)
    headers = {"X-API-Key": stack.api_key}
    async with httpx.AsyncClient(
        base_url=stack.api_url, timeout=20, limits=limits, headers=headers
    ) as c:
        yield c


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(stack) as c:
        yield c


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, launched once for the session's browser tests."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=chromium(), headless=True)
        try:
            yield launched
        finally:
            await launched.close()
