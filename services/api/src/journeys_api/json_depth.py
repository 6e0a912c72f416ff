"""The nesting depth of a JSON body, measured on its bytes before anything parses it.

Parsing first is what fails: Python's parser raises RecursionError past about 1,000 levels,
pydantic cannot serialise a command past 255, and the executor's parser refuses a record
past 200. So the depth is counted on the raw bytes, with C-speed byte operations
(`replace`, `translate`, `itertools.accumulate`), and a body over the limit never reaches
a parser.
"""

from __future__ import annotations

import itertools
import re

from fastapi.exceptions import RequestValidationError

_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
_NOT_QUOTES_OR_BRACKETS = bytes(b for b in range(256) if b not in b'"[]{}')
# A string that still holds brackets once everything else is gone.
_STRING = re.compile(rb'"[^"]*"')
# An opening bracket becomes +1 and a closing one -1 (0xff read as a signed byte).
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def depth(body: bytes) -> int:
    """How deep containers nest in `body` (`{}` is 1, `{"a": []}` is 2); meaningful for
    well-formed JSON, and for anything else only ever an input to a refusal.

    Brackets inside strings do not count. Escaped backslashes, then escaped quotes, are
    dropped, so every remaining quote opens or closes a string; then only quotes and
    brackets are kept. Two adjacent quotes now enclose no bracket (an empty string, or the
    end of one string and the start of the next): dropping them keeps every remaining
    quote paired, and leaves only the few strings that hold brackets to remove one by one.
    """
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    reduced = unescaped.translate(None, _NOT_QUOTES_OR_BRACKETS).replace(b'""', b"")
    steps = _STRING.sub(b"", reduced).translate(_STEPS, _NOT_BRACKETS)
    return max(0, max(itertools.accumulate(memoryview(steps).cast("b")), default=0))


def require_depth_within(body: bytes, limit: int) -> None:
    """422 at the body, naming the limit, when `body` nests deeper than `limit`."""
    # Depth never exceeds the number of opening brackets, which is cheap to count.
    if body.count(b"{") + body.count(b"[") > limit and depth(body) > limit:
        raise RequestValidationError([{
            "type": "json_too_deep", "loc": ("body",),
            "msg": f"JSON nests deeper than the limit of {limit} levels",
        }])  # fmt: skip
