"""Every topic the code uses is declared by the topics Job and by the Strimzi resources."""

from __future__ import annotations

import re

from journeys_runtime.settings import SECRETS_DIR_VARIABLE, TopicSettings
from journeys_runtime.topics import Topics
from tests.deploy.conftest import ROOT, Rendered

# A topic's name: `journeys.<name>.v<N>` (record types, unlike topics, have two words before
# the version), or an internal table's `journeys.<...>.changelog`.
TOPIC_LITERAL = re.compile(r"journeys\.[a-z_]+\.v\d+\b|journeys\.[a-z_.]+\.changelog\b")
SOURCES = ("contracts/src", "libs/runtime/src", "services")
STRIMZI_FIELDS = {"topicName", "partitions", "replicas", "config"}


def test_the_code_names_no_topic_outside_topics() -> None:
    topics = Topics("")
    names = set(topics.names)
    values = [getattr(topics, p) for p, v in vars(Topics).items() if isinstance(v, property)]
    properties = {v for v in values if isinstance(v, str)}
    assert properties == names, "Topics.names lists every topic property"
    for base in SOURCES:
        for path in (ROOT / base).rglob("*.py"):
            for found in TOPIC_LITERAL.findall(path.read_text()):
                assert found in names, f"{path.relative_to(ROOT)} uses undeclared topic {found}"


def test_topics_job_declares_them(overlays: dict[str, Rendered]) -> None:
    """The Job runs `topics apply` (or `verify` where Strimzi owns them) over `Topics`."""
    actions = {}
    for name, rendered in overlays.items():
        job = rendered.get("Job", "journeys-topics")
        command = job["spec"]["template"]["spec"]["containers"][0]["command"]
        assert command[:4] == ["python", "-m", "journeys_runtime", "topics"]
        actions[name] = command[4]
    assert actions == {"local": "apply", "production": "verify"}


def configured(config: dict[str, str]) -> TopicSettings:
    """The topics job's settings from the ConfigMap alone (the secret is a stand-in)."""
    known = {k: v for k, v in config.items() if k != SECRETS_DIR_VARIABLE}
    return TopicSettings(**known, JOURNEYS_PATIENT_KEY_SECRET="s" * 48)


def test_strimzi_topics_match_the_code(overlays: dict[str, Rendered]) -> None:
    """Retention included: what the ConfigMap's settings make `Topics` declare."""
    rendered = overlays["production"]
    config = rendered.config()
    settings = configured(config)
    topics = Topics(settings.topic_prefix, settings.retention)
    declared = topics.configs(settings.topic_min_insync_replicas)
    resources = {r["spec"]["topicName"]: r for r in rendered.of_kind("KafkaTopic")}
    assert set(resources) == set(topics.names)
    clusters, namespaces = set(), set()
    for name, resource in resources.items():
        spec = resource["spec"]
        assert resource["apiVersion"] == "kafka.strimzi.io/v1"
        assert set(spec) == STRIMZI_FIELDS, name
        assert spec["partitions"] == int(config["JOURNEYS_PARTITIONS"]), name
        assert spec["replicas"] == int(config["JOURNEYS_TOPIC_REPLICATION_FACTOR"]), name
        assert {k: str(v) for k, v in spec["config"].items()} == declared[name], name
        clusters.add(resource["metadata"]["labels"]["strimzi.io/cluster"])
        namespaces.add(resource["metadata"]["namespace"])
    # The services talk to the cluster whose topic operator these resources address: its
    # bootstrap Service, in the namespace the resources live in.
    (cluster,) = clusters
    (namespace,) = namespaces
    host = config["KAFKA_BOOTSTRAP_SERVERS"].split(":")[0]
    assert host in (f"{cluster}-kafka-bootstrap.{namespace}.svc",
                    f"{cluster}-kafka-bootstrap.{namespace}.svc.cluster.local")  # fmt: skip


def test_deploy_readme_counts_the_kafka_topics(overlays: dict[str, Rendered]) -> None:
    count = len(overlays["production"].of_kind("KafkaTopic"))
    words = {6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}
    assert f"{words[count]} `KafkaTopic`s" in (ROOT / "deploy" / "README.md").read_text()
