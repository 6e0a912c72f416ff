"""Every setting a service reads is in the ConfigMap or the mounted Secret, and validates."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from journeys_api.imports.settings import ImporterSettings
from journeys_api.ingest.settings import IngestSettings
from journeys_api.settings import ApiSettings
from journeys_delivery.settings import DeliverySettings
from journeys_executor.settings import ExecutorSettings
from journeys_projector.settings import ProjectorSettings
from journeys_runtime.settings import SECRETS_DIR_VARIABLE, TopicSettings
from journeys_scheduler.settings import SchedulerSettings
from tests.deploy.conftest import OVERLAYS, Doc, Rendered

# Settings a deployment leaves unset on purpose, and why.
UNSET = {
    "JOURNEYS_CRASH_AT": "a test-only fault point, refused in production",
    "PROJECTOR_GROUP_ID": "unset means `<JOURNEYS_TOPIC_PREFIX>journeys-projector`",
    "API_AUTH_DEV_KEY": "a development key with every scope, refused in production",
    "API_WEBHOOK_SOURCES": "holds webhook secrets: a file of the Secret, once webhooks are used",
    "DELIVERY_WEBHOOK_URL": "set with DELIVERY_WEBHOOK_SECRET, once a gateway is used",
    "DELIVERY_WEBHOOK_SECRET": "a file of the Secret, once a gateway is used",
    "DELIVERY_SMS_URL": "set with the account, token and number, once an SMS gateway is used",
    "DELIVERY_SMS_ACCOUNT_SID": "set with the gateway's URL, once an SMS gateway is used",
    "DELIVERY_SMS_AUTH_TOKEN": "a file of the Secret, once an SMS gateway is used",
    "API_SMS_AUTH_TOKEN": "the same token, a file of the API's Secret, once texts come back",
    "IMPORTER_PROGRESS_WEBHOOK_URL": "holds the chat's secret: a file of the Secret, once used",
    "IMPORTER_PROGRESS_WEBHOOKS": "hold the chats' secrets: a file of the Secret, once used",
    "API_CONSOLE_OIDC_CLIENT_SECRET": "a file of the Secret, for a confidential client",
    "API_CONSOLE_OIDC_SCOPES": "openid and every API scope, unless the issuer names them apart",
    "DELIVERY_SMS_FROM": "the sending number, once an SMS gateway is used",
    "DELIVERY_SMTP_HOST": "set with DELIVERY_SMTP_FROM, once an SMTP server is used",
    "DELIVERY_SMTP_FROM": "set with DELIVERY_SMTP_HOST, once an SMTP server is used",
    "DELIVERY_SMTP_USERNAME": "only for an SMTP server that asks for AUTH",
    "DELIVERY_SMTP_PASSWORD": "a file of the Secret, only for an SMTP server that asks for AUTH",
    "DELIVERY_SMTP_CA_FILE": "unset trusts the system's CAs",
}
SETTINGS: dict[str, type[BaseSettings]] = {
    "journeys_api": ApiSettings,
    "journeys_api.ingest": IngestSettings,
    "journeys_api.imports": ImporterSettings,
    "journeys_executor": ExecutorSettings,
    "journeys_scheduler": SchedulerSettings,
    "journeys_projector": ProjectorSettings,
    "journeys_delivery": DeliverySettings,
    "journeys_runtime": TopicSettings,
}
# Stand-ins for the values the Secret holds, shaped as production requires, where an overlay
# does not generate the Secret itself.
SECRET_VALUES = {
    "JOURNEYS_PATIENT_KEY_SECRET": "s" * 48,
    "DATABASE_URL": "postgresql://journeys:pw@db.example.internal:5432/journeys",
    "JOURNEYS_SHREDDING_KEKS": f"kek-1={base64.b64encode(os.urandom(32)).decode()}",
}
KEKS = "JOURNEYS_SHREDDING_KEKS"
# The only programs that wrap or unwrap patients' data keys (the ingest and importer are the API's
# code).
KEK_READERS = {"journeys_api", "journeys_api.ingest", "journeys_api.imports", "journeys_executor",
               "journeys_delivery"}  # fmt: skip


def variables(cls: type[BaseSettings]) -> set[str]:
    """The environment variable of each field, as pydantic-settings looks it up."""
    prefix = cls.model_config.get("env_prefix", "")
    names = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.add(str(alias.choices[0]))
        else:
            names.add(f"{prefix}{name}".upper())
    return names


def journeys_containers(rendered: Rendered) -> list[tuple[Doc, Doc]]:
    """(pod spec, container) of every container that runs our image's Python modules."""
    found = []
    for workload in rendered.workloads():
        pod = workload["spec"]["template"]["spec"]
        for c in [*pod.get("initContainers", []), *pod["containers"]]:
            if c.get("command", [])[:2] == ["python", "-m"]:
                found.append((pod, c))
    return found


def environment(
    rendered: Rendered, pod: Doc, container: Doc
) -> tuple[dict[str, str], dict[str, str]]:
    """(plain variables, the Secret's files this container sees: file name -> Secret key)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(rendered.get("ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        assert "value" in var, f"{container['name']}: {var['name']} must come from a file"
        env[var["name"]] = var["value"]
    secrets_dir = env.get(SECRETS_DIR_VARIABLE)
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    files: dict[str, str] = {}
    for mount in container.get("volumeMounts", []):
        secret = volumes[mount["name"]].get("secret")
        if secret is not None and mount["mountPath"] == secrets_dir:
            files |= {item["path"]: item["key"] for item in secret["items"]}
    return env, files


def secret_value(rendered: Rendered, file: str, key: str) -> str:
    """What the overlay's own Secret holds under `key` (the local one generates it), else the
    production-shaped stand-in for `file`."""
    generated = [s for s in rendered.of_kind("Secret")
                 if s["metadata"]["name"].startswith("journeys-secrets")]  # fmt: skip
    if generated and key in generated[0]["data"]:
        return base64.b64decode(generated[0]["data"][key]).decode()
    return SECRET_VALUES[file]


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_setting_is_configured(name: str, overlays: dict[str, Rendered]) -> None:
    rendered = overlays[name]
    containers = journeys_containers(rendered)
    assert {c["command"][2] for _, c in containers} == set(SETTINGS)
    for pod, container in containers:
        env, files = environment(rendered, pod, container)
        wanted = variables(SETTINGS[container["command"][2]]) - set(UNSET)
        missing = wanted - set(env) - set(files)
        assert not missing, f"{name}: {container['name']} lacks {sorted(missing)}"
        assert not set(env) & set(files), "a value both in the ConfigMap and in the Secret"
        assert not set(env) & set(SECRET_VALUES), "credentials belong in the Secret"


@pytest.mark.parametrize("name", OVERLAYS)
def test_configured_values_validate(
    name: str, overlays: dict[str, Rendered], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings classes accept what the manifests give them, as the pods would start."""
    rendered = overlays[name]
    for var in set().union(*map(variables, SETTINGS.values())) | {SECRETS_DIR_VARIABLE}:
        monkeypatch.delenv(var, raising=False)
    for i, (pod, container) in enumerate(journeys_containers(rendered)):
        env, files = environment(rendered, pod, container)
        secrets = tmp_path / str(i)
        secrets.mkdir()
        for file, key in files.items():
            (secrets / file).write_text(secret_value(rendered, file, key) + "\n")
        with monkeypatch.context() as m:
            for key, value in {**env, SECRETS_DIR_VARIABLE: str(secrets)}.items():
                m.setenv(key, value)
            settings = SETTINGS[container["command"][2]]()
        assert settings.environment == (  # type: ignore[attr-defined]
            "development" if name == "local" else "production"
        )


@pytest.mark.parametrize("name", OVERLAYS)
def test_config_map_holds_no_unknown_setting(name: str, overlays: dict[str, Rendered]) -> None:
    """A misspelt key would be ignored silently by pydantic-settings (`extra="ignore"`)."""
    known = set().union(*map(variables, SETTINGS.values())) | {SECRETS_DIR_VARIABLE}
    unknown = set(overlays[name].config()) - known
    assert not unknown, f"{name}: no service reads {sorted(unknown)}"


@pytest.mark.parametrize("name", OVERLAYS)
def test_only_the_api_and_the_executor_see_the_key_encryption_keys(
    name: str, overlays: dict[str, Rendered]
) -> None:
    """Whoever holds the KEKs can open every patient's sealed data: these programs, no more."""
    seen = set()
    for workload in overlays[name].workloads():
        pod = workload["spec"]["template"]["spec"]
        kek_volumes = {
            v["name"] for v in pod.get("volumes", [])
            if any(i["path"] == KEKS for i in v.get("secret", {}).get("items", []))
        }  # fmt: skip
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            if {m["name"] for m in container.get("volumeMounts", [])} & kek_volumes:
                program = (container.get("command", []) + [None] * 3)[2]
                assert program in KEK_READERS, container["name"]
                seen.add(program)
    assert seen == KEK_READERS
