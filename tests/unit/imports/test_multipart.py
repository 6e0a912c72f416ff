"""The file of a multipart upload comes out byte for byte however the body is split, every
other field dropped; a body without exactly one `file`, or cut off, is refused."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from journeys_api.imports.multipart import FilePart
from journeys_api.imports.rows import FileRefusedError

CSV = b"event_id,clinic_id\r\ne-1,c-1\r\n--not-a-boundary\r\n" + bytes(range(256)) * 4


def multipart(files: list[tuple[str, bytes]], fields: dict[str, str] | None = None) -> tuple[
    str, bytes
]:  # fmt: skip
    """(Content-Type, body) as httpx writes a form upload."""
    request = httpx.Request(
        "POST", "http://api/imports", data=fields or {},
        files=[(name, ("march.csv", content, "text/csv")) for name, content in files],
    )  # fmt: skip
    return request.headers["content-type"], request.read()


def read(content_type: str, body: bytes, cuts: list[int]) -> tuple[bytes, FilePart]:
    part = FilePart(content_type)
    out, last = b"", 0
    for cut in [*sorted(cuts), len(body)]:
        out += part.feed(body[last:cut])
        last = cut
    part.end()
    return out, part


@given(st.lists(st.integers(0, 2000), max_size=12))
def test_the_file_comes_out_whole_however_the_body_is_split(cuts: list[int]) -> None:
    content_type, body = multipart([("file", CSV)], {"note": "x" * 300})
    out, part = read(content_type, body, [c for c in cuts if c < len(body)])
    assert out == CSV
    assert part.file_name == "march.csv"


def test_a_body_without_one_file_is_refused() -> None:
    for files in ([("other", CSV)], [("file", CSV), ("file", CSV)]):
        content_type, body = multipart(files)
        with pytest.raises(FileRefusedError, match="field `file`"):
            read(content_type, body, [])
    content_type, body = multipart([("file", CSV)])
    with pytest.raises(FileRefusedError, match="closing boundary"):
        read(content_type, body[:-40], [])
    with pytest.raises(FileRefusedError, match="boundary"):
        FilePart("multipart/form-data")
