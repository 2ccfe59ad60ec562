"""Splitting ``jobPars`` into arguments in linear time (private: used by :func:`~pilotlib.payload.build_command`).

:func:`shlex.split` builds each token by appending one character at a time to a string (``self.token += nextchar``),
which is quadratic in the length of a token: a 1 MB argument takes tens of seconds and a 10 MB one never ends, while
the pilot cannot be stopped (a CPU-bound step in a stage thread holds the GIL between bytecodes and never looks at the
stop). :func:`split_args` gives the same arguments as ``shlex.split(text)`` (POSIX rules, no comments) with one regular
expression pass, linear in the input.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["split_args"]

# shlex's whitespace is exactly these four characters (other Unicode spaces are word characters there too).
_TOKEN: Final = re.compile(
    r"""(?P<space>[ \t\r\n]+)
      | (?P<plain>[^ \t\r\n'"\\]+)
      | \\(?P<escaped>.)
      | '(?P<single>[^']*)'
      | "(?P<double>[^"\\]*(?:\\.[^"\\]*)*)"
      | (?P<bad>.)""",
    re.VERBOSE | re.DOTALL,
)
# inside double quotes a backslash escapes only a double quote or a backslash (shlex ``escapedquotes``)
_DOUBLE_ESCAPE: Final = re.compile(r'\\(["\\])')
_ONLY_WORDS: Final = re.compile(r"""[^'"\\]*""")
_SPACES: Final = re.compile(r"[ \t\r\n]+")
_DOUBLE_ENDS_ESCAPING: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*\\\Z', re.DOTALL)


def split_args(text: str) -> list[str]:
    """Split ``text`` into arguments as ``shlex.split(text)`` does, in time linear in ``len(text)``.

    Quotes (``'...'``, ``"..."``) and backslash escapes follow POSIX shell rules, as :func:`shlex.split` applies
    them: a backslash outside quotes takes the next character literally; inside double quotes it escapes only ``"``
    and ``\\``; an empty quoted string is an empty argument. ``#`` starts no comment.

    Raises:
        ValueError: a quote is not closed (``No closing quotation``) or the text ends in a backslash
            (``No escaped character``), as :func:`shlex.split` raises.
    """
    if _ONLY_WORDS.fullmatch(text):  # no quote and no escape: a plain split (the common case)
        return [word for word in _SPACES.split(text) if word]
    args: list[str] = []
    pieces: list[str] = []
    open_token = False  # a token has started (an empty quoted string is an argument)
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "space":
            if open_token:
                args.append("".join(pieces))
                pieces, open_token = [], False
            continue
        if kind == "bad":
            raise ValueError(_error(text, match.start()))
        value = match.group(str(kind))
        pieces.append(_DOUBLE_ESCAPE.sub(r"\1", value) if kind == "double" else value)
        open_token = True
    if open_token:
        args.append("".join(pieces))
    return args


def _error(text: str, at: int) -> str:
    """shlex's message for the character at ``at`` that starts no token: a final backslash (also one inside an
    unclosed double quote) or an unclosed quote."""
    if text[at] == "\\" or (text[at] == '"' and _DOUBLE_ENDS_ESCAPING.match(text, at)):
        return "No escaped character"
    return "No closing quotation"
