"""The project's root exception type. The CLI shows any of these as one line and exits 2."""

import difflib
from collections.abc import Iterable


class HpsearchError(Exception):
    """Something the user asked for cannot be done; the message says what and why."""


class StudyNotFound(HpsearchError):
    pass


def unknown_choice(what: str, value: object, choices: tuple[str, ...]) -> str:
    """The one wording of a value outside a list: ``unknown sampler 'x': choose gp, tpe or
    random`` (for flags with `choices=` and for experiment-file keys alike)."""
    listed = list(map(str, choices))
    allowed = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " or " + listed[-1]
    return f"unknown {what} {value!r}: choose {allowed}"


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'trials'?)`` when `word` is close to one of `known`, else ""."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
