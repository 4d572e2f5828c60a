"""Reading typed settings from environment variables, with errors that name the variable.

Each service declares its settings once, as a frozen dataclass built by these readers; a bad value
raises `SettingsError`, which the service's entry point prints before exiting non-zero.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# TDengine identifiers we interpolate into SQL: plain names only, so no quoting is ever needed
# (names are case-insensitive, at most 64 bytes for databases and columns; tdengine.md 2.2).
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable and what was expected."""

    def __init__(self, name: str, expected: str, got: str | None):
        shown = "nothing" if got is None else repr(got)
        super().__init__(f"{name}: expected {expected}, got {shown}")
        self.name = name


class Env:
    """Typed access to one environment mapping; defaults are given by the caller, once."""

    def __init__(self, environ: Mapping[str, str]):
        self._environ = environ

    def raw(self, name: str, default: str) -> str:
        value = self._environ.get(name)
        return default if value is None or value.strip() == "" else value.strip()

    def string(self, name: str, default: str, *, max_length: int = 1024) -> str:
        value = self.raw(name, default)
        if len(value) > max_length:
            raise SettingsError(name, f"at most {max_length} characters", value)
        return value

    def integer(self, name: str, default: int, *, minimum: int | None = None,
                maximum: int | None = None) -> int:
        text = self.raw(name, str(default))
        expected = _range_text("a whole number", minimum, maximum)
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            raise SettingsError(name, expected, text) from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise SettingsError(name, expected, text)
        return value

    def duration(self, name: str, default: str, *, minimum_s: float = 0.0,
                 maximum_s: float | None = None) -> float:
        """A duration such as `250ms`, `30s`, `10m`, `2h`, `7d` (a bare number means seconds)."""
        text = self.raw(name, default)
        expected = "a duration such as 500ms, 30s, 10m, 2h or 7d"
        if minimum_s:
            expected += f", at least {minimum_s:g} s"
        if maximum_s is not None:
            expected += f", at most {maximum_s:g} s"
        match = _DURATION.match(text)
        if not match:
            raise SettingsError(name, expected, text)
        seconds = float(match.group(1)) * _DURATION_UNITS_S[match.group(2) or "s"]
        if seconds < minimum_s or (maximum_s is not None and seconds > maximum_s):
            raise SettingsError(name, expected, text)
        return seconds

    def identifier(self, name: str, default: str) -> str:
        text = self.raw(name, default)
        if not _IDENTIFIER.match(text):
            raise SettingsError(
                name, "a TDengine name: a letter or _, then letters, digits or _ (at most 64)", text
            )
        return text.lower()

    def log_level(self, name: str, default: str = "INFO") -> str:
        text = self.raw(name, default).upper()
        if text not in _LOG_LEVELS:
            raise SettingsError(name, "one of " + ", ".join(_LOG_LEVELS), text)
        return text


def _range_text(kind: str, minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{kind} from {minimum} to {maximum}"
    if minimum is not None:
        return f"{kind} >= {minimum}"
    if maximum is not None:
        return f"{kind} <= {maximum}"
    return kind


def load_or_exit(service: str, read, environ: Mapping[str, str]):
    """Read a service's settings, or exit with status 2 and one line naming the bad variable
    (the contract every entry point keeps: nothing starts on a bad setting)."""
    try:
        return read(environ)
    except SettingsError as error:
        print(f"{service}: configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
