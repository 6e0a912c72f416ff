"""Where the local stack keeps its files: one git-ignored directory under the checkout."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # deploy/local
REPO_ROOT = PACKAGE_ROOT.parents[1]
KAFKA_POM = PACKAGE_ROOT / "kafka" / "pom.xml"
KAFKA_LOG4J = PACKAGE_ROOT / "kafka" / "log4j.properties"


def data_dir() -> Path:
    return Path(os.environ.get("JOURNEYS_DATA_DIR", REPO_ROOT / ".data")).resolve()


def kafka_libs_dir() -> Path:
    return Path(os.environ.get("JOURNEYS_KAFKA_LIBS_DIR", data_dir() / "kafka-libs")).resolve()
