"""The load tool: vegeta (constant-rate and open-ended HTTP load), built once from the Go
module proxy into the bench's own directory."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

VEGETA = "github.com/tsenart/vegeta/v12@v12.12.0"


def vegeta(bin_dir: Path) -> Path:
    """The vegeta binary: on PATH, in `bin_dir`, or `go install`ed there now."""
    found = shutil.which("vegeta")
    if found:
        return Path(found)
    binary = bin_dir / "vegeta"
    if not binary.exists():
        go = shutil.which("go")
        if go is None:
            raise RuntimeError("vegeta is not on PATH and Go is not installed to build it")
        log.info("building %s", VEGETA)
        bin_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GOBIN": str(bin_dir)}
        subprocess.run([go, "install", VEGETA], check=True, env=env)  # noqa: S603
    return binary
