"""`python -m journeys_api import FILE.csv`: upload a clinic's CSV to a running API and follow
its import with a progress bar (rich): the upload's bytes, then the rows read, accepted and
rejected and the rate. Exits 0 once the import completed, 1 when it failed, 2 when the file or
the request was refused (the reason is printed; the rows' errors are at
`GET /imports/{importId}/errors`)."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

CHUNK = 1024 * 1024
COMPLETED, FAILED, REFUSED = 0, 1, 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="the CSV file")
    p.add_argument("--url", default=os.environ.get("JOURNEYS_API_URL", "http://127.0.0.1:8000"),
                   help="the API (env JOURNEYS_API_URL)")  # fmt: skip
    p.add_argument("--api-key", default=os.environ.get("JOURNEYS_API_KEY"),
                   help="with imports:write and imports:read (env JOURNEYS_API_KEY)")  # fmt: skip
    p.add_argument("--name", help="the name the import shows (default: the file's)")


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    console = console or Console(stderr=True)
    if not args.api_key:
        console.print("error: an API key is needed (--api-key or JOURNEYS_API_KEY)")
        return REFUSED
    size = args.file.stat().st_size
    lines = 0
    headers = {"X-API-Key": args.api_key, "Content-Type": "text/csv"}
    with httpx.Client(base_url=args.url, headers=headers, timeout=60) as client, Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeElapsedColumn(), console=console,
    ) as bar:  # fmt: skip
        sending = bar.add_task("uploading", total=size)

        def body() -> Iterator[bytes]:
            nonlocal lines
            with args.file.open("rb") as f:
                while chunk := f.read(CHUNK):
                    lines += chunk.count(b"\n")
                    bar.advance(sending, len(chunk))
                    yield chunk

        answer = client.post("/imports", content=body(),
                             params={"name": args.name or args.file.name})  # fmt: skip
        if answer.status_code != 202:
            console.print(f"refused ({answer.status_code}): {_detail(answer)}")
            return REFUSED
        import_id = answer.json()["importId"]
        bar.update(sending, description=f"uploaded, import {import_id}")
        rows = bar.add_task("importing", total=max(lines - 1, 1))
        while True:
            state = client.get(f"/imports/{import_id}").json()
            rate = state.get("rowsPerSecond") or 0
            bar.update(rows, completed=state["rowsRead"], description=(
                f"rows {state['rowsRead']:,} accepted {state['accepted']:,} rejected "
                f"{state['rejected']:,} ({rate:,.0f} rows/s)"))  # fmt: skip
            if state["status"] in ("completed", "failed"):
                break
            time.sleep(0.5)
    if state["status"] == "failed":
        console.print(f"import {import_id} failed: {state['reason']}")
        return FAILED
    errors = f"; errors: GET /imports/{import_id}/errors" if state["rejected"] else ""
    console.print(
        f"import {import_id} completed: {state['accepted']:,} rows imported, "
        f"{state['rejected']:,} rejected, {state['duplicates']:,} duplicates, revenue "
        f"{state['revenue']}{errors}"
    )
    return COMPLETED


def _detail(answer: httpx.Response) -> str:
    try:
        detail = answer.json().get("detail")
    except ValueError:
        return answer.text[:300]
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail)
    return str(detail)
