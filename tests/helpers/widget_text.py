"""What a widget shows, as plain text: for assertions on a screen's wording."""

from __future__ import annotations


def text_of(widget: object, width: int = 110) -> str:
    """The plain text a Static (or Label) currently shows, rendered with Rich."""
    from rich.console import Console

    content = widget.content  # type: ignore[attr-defined]
    if isinstance(content, str):
        return content
    console = Console(width=width, record=True, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(content)
    return console.export_text()
