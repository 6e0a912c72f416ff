"""The file of a `multipart/form-data` upload (field `file`), as its bytes stream in.

python-multipart's streaming parser, fed the body piece by piece: the file's bytes are handed
on as they come, never gathered or spooled to disk as a form parser would (Starlette's keeps
all but the first megabyte in a temporary file); every other part is read past and dropped.
"""

from __future__ import annotations

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from journeys_api.imports.rows import FileRefusedError

FIELD = b"file"
MAX_FILE_NAME = 200


class FilePart:
    """`feed` each piece of the body, take the file's bytes it answers, then `end`.
    `FileRefusedError` (a 422: nothing of the upload is kept) for a body that is not a
    multipart body, one without a `file` field or with two, or one cut off before its end."""

    def __init__(self, content_type: str) -> None:
        _, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if not boundary:
            raise FileRefusedError("a multipart upload needs its boundary in Content-Type")
        self.file_name: str | None = None
        self._found = self._in_file = self._ended = False
        self._out: list[bytes] = []
        self._field, self._value = bytearray(), bytearray()
        self._disposition = b""
        self._parser = MultipartParser(boundary, callbacks={
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
            "on_end": self._end,
        })  # fmt: skip

    def feed(self, piece: bytes) -> bytes:
        try:
            self._parser.write(piece)
        except MultipartParseError as exc:
            raise FileRefusedError(f"the multipart body is malformed: {exc}") from None
        out = b"".join(self._out)
        self._out.clear()
        return out

    def end(self) -> None:
        if not self._ended:
            raise FileRefusedError("the multipart body ends before its closing boundary")
        if not self._found:
            raise FileRefusedError("a multipart upload carries the CSV file in the field `file`")

    def _part_begin(self) -> None:
        self._in_file, self._disposition = False, b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if bytes(self._field).lower() == b"content-disposition":
            self._disposition = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._disposition)
        if params.get(b"name") != FIELD:
            return
        if self._found:
            raise FileRefusedError("a multipart upload carries one file, in the field `file`")
        self._found = self._in_file = True
        name = params.get(b"filename")
        if name:
            self.file_name = name.decode(errors="replace")[:MAX_FILE_NAME]

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._out.append(data[start:end])

    def _end(self) -> None:
        self._ended = True
