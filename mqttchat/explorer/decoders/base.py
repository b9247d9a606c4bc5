"""The decoder interface: one step from bytes to bytes (gzip, base64) or from bytes to a tree (JSON, Sparkplug)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Protocol

from mqttchat.explorer.decoders.result import Decoded

__all__ = ["DEFAULT_LIMITS", "AliasLookup", "DecodeContext", "DecodeLimits", "Decoder"]


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """What one decode may cost, whatever the payload says."""

    #: Bytes a decompression or base64 step may produce (a decompression bomb stops here).
    max_output: int = 8 * 1024 * 1024
    #: Transforms in a row that auto-detection may add (gzip inside gzip...).
    max_auto_steps: int = 4
    #: Nodes in one decoded tree; the rest is cut with a note.
    max_nodes: int = 200_000
    #: Nesting depth shown; deeper values are cut with a note.
    max_depth: int = 200
    #: CBOR and MessagePack maps whose keys are not text or bytes (ints, arrays) are decoded only in payloads up to
    #: this size: such keys can be chosen to collide in Python's hash tables, which makes decoding quadratic.
    max_relaxed_keys_payload: int = 16 * 1024
    #: Bytes an external command may write to stdout (it is killed beyond).
    max_command_output: int = 1024 * 1024
    #: External commands running at once.
    max_commands: int = 2


DEFAULT_LIMITS = DecodeLimits()


class AliasLookup(Protocol):
    """A Sparkplug alias table: metric name and datatype by alias (the state model keeps one per birth)."""

    @property
    def generation(self) -> int: ...

    def lookup(self, alias: int) -> tuple[str, int] | None: ...


@dataclass(frozen=True, slots=True)
class DecodeContext:
    """What a decoder may know besides the bytes: the topic, the MQTT 5 content type, Sparkplug aliases."""

    topic: str = ""
    content_type: str | None = None
    #: The alias table in force when the message arrived (Sparkplug DATA messages name metrics by alias).
    aliases: AliasLookup | None = None
    limits: DecodeLimits = DEFAULT_LIMITS


class Decoder(ABC):
    """One decoding step. ``decode`` returns bytes for the next step (a transform) or the decoded tree, and raises
    :class:`~mqttchat.explorer.decoders.result.DecodeFailure` with the reason when the input is not its format.
    Any other exception is turned into a failure by the pipeline too, but a decoder should not rely on that."""

    #: The name used in settings and in "decode as…".
    name: ClassVar[str]
    #: Bytes in, bytes out (gzip, base64): what it returns is decoded by the next step.
    transform: ClassVar[bool] = False
    #: Runs outside the process (an external command): only :meth:`decode_async` does the work.
    external: ClassVar[bool] = False

    @abstractmethod
    def decode(self, data: bytes, ctx: DecodeContext) -> bytes | Decoded: ...

    async def decode_async(self, data: bytes, ctx: DecodeContext) -> bytes | Decoded:
        return self.decode(data, ctx)
