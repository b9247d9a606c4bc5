"""Checks of values shared by profiles, settings and templates: integers in a range, MQTT strings, names."""

from __future__ import annotations

from mqttchat.protocol.constants import MAX_STRING_LENGTH

__all__ = ["MAX_NAME", "MAX_UINT16", "MAX_UINT32", "int_problem", "name_problem", "string_problem"]

MAX_UINT16 = 65_535
MAX_UINT32 = 4_294_967_295
#: The longest name of a profile or a template, in characters.
MAX_NAME = 64


def int_problem(value: object, low: int, high: int) -> str | None:
    """What is wrong with an integer that must be in low..high, or None."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return f"must be an integer between {low} and {high}, not {value!r}"
    return None


def string_problem(value: str) -> str | None:
    """What keeps a string from being sent as an MQTT UTF-8 string, or None."""
    if "\x00" in value:
        return "must not contain U+0000"
    if len(value) > MAX_STRING_LENGTH // 4 and len(value.encode(errors="surrogatepass")) > MAX_STRING_LENGTH:
        return f"is too long (at most {MAX_STRING_LENGTH} bytes of UTF-8)"
    return None


def name_problem(name: object, what: str) -> str | None:
    """What is wrong with the name of a profile or a template (``what``), or None."""
    if not isinstance(name, str) or not name.strip():
        return f"a {what} needs a name"
    if name != name.strip():
        return "must not start or end with blanks"
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        return "must not contain control characters"
    if len(name) > MAX_NAME:
        return f"is too long (at most {MAX_NAME} characters)"
    return None
