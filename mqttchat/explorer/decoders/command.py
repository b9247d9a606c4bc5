"""An external command as a decoder: the payload on its stdin, text or JSON on its stdout.

It runs as an asyncio subprocess (never blocking the event loop), in a session of its own so that a timeout
kills it and whatever it started; its stdout is read up to ``DecodeLimits.max_command_output`` bytes (it is killed
beyond that), and at most ``DecodeLimits.max_commands`` run at once. The command comes from the user's own
settings file, never from the network; the payload reaches it only on stdin, never on its command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Sequence

from mqttchat.config.decoder_rules import DEFAULT_TIMEOUT, MAX_TIMEOUT
from mqttchat.explorer.decoders.base import DecodeContext, Decoder
from mqttchat.explorer.decoders.result import Decoded, DecodeFailure, leaf
from mqttchat.explorer.decoders.text import decode_json_value
from mqttchat.labels import size_label

__all__ = ["CommandDecoder"]

#: What is kept of stderr for the failure's reason.
_STDERR_KEPT = 4096
_READ = 64 * 1024

_semaphores: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Semaphore]] = {}


def _semaphore(limit: int) -> asyncio.Semaphore:
    """One semaphore per running loop and limit (a semaphore belongs to the loop it was first used in)."""
    loop = asyncio.get_running_loop()
    known = _semaphores.get(limit)
    if known is None or known[0] is not loop:
        known = _semaphores[limit] = (loop, asyncio.Semaphore(limit))
    return known[1]


class CommandDecoder(Decoder):
    name = "command"
    external = True

    def __init__(self, argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT) -> None:
        if not argv or not all(isinstance(part, str) and part for part in argv):
            raise ValueError("the command must be a non-empty list of non-empty strings")
        if not 0 < timeout <= MAX_TIMEOUT:
            raise ValueError(f"the timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds")
        self.argv = tuple(argv)
        self.timeout = timeout

    def decode(self, data: bytes, ctx: DecodeContext) -> Decoded:
        raise DecodeFailure("an external command decodes only in the background")

    async def decode_async(self, data: bytes, ctx: DecodeContext) -> Decoded:
        async with _semaphore(ctx.limits.max_commands):
            status, out, err = await self._run(data, ctx.limits.max_command_output)
        if status != 0:
            detail = err.decode("utf-8", errors="replace").strip().splitlines()
            reason = f"{self.argv[0]} exited with status {status}"
            raise DecodeFailure(reason + (f": {detail[-1][:200]}" if detail else ""))
        text = out.decode("utf-8", errors="replace")
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return Decoded("command", leaf("", text, "text"), text, {})
        return decode_json_value(value, ctx, "command")

    async def _run(self, data: bytes, limit: int) -> tuple[int, bytes, bytes]:
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=os.name == "posix",
            )
        except OSError as exc:
            raise DecodeFailure(f"cannot run {self.argv[0]}: {exc.strerror or exc}") from None
        out = bytearray()
        err = bytearray()
        too_much = False

        async def feed() -> None:
            assert process.stdin is not None
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                process.stdin.write(data)
                await process.stdin.drain()
                process.stdin.close()
                await process.stdin.wait_closed()

        async def read_out() -> None:
            nonlocal too_much
            assert process.stdout is not None
            while chunk := await process.stdout.read(_READ):
                out.extend(chunk)
                if len(out) > limit:
                    too_much = True
                    _kill(process)
                    return

        async def read_err() -> None:
            assert process.stderr is not None
            while chunk := await process.stderr.read(_READ):
                if len(err) < _STDERR_KEPT:
                    err.extend(chunk[: _STDERR_KEPT - len(err)])

        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.gather(feed(), read_out(), read_err())
                status = await process.wait()
        except TimeoutError:
            _kill(process)
            await process.wait()
            raise DecodeFailure(f"{self.argv[0]} did not finish within {self.timeout:g} s (killed)") from None
        finally:
            if process.returncode is None:
                _kill(process)
                with contextlib.suppress(ProcessLookupError):
                    await process.wait()
        if too_much:
            raise DecodeFailure(f"{self.argv[0]} wrote more than {size_label(limit)} (killed)")
        return status, bytes(out), bytes(err)


def _kill(process: asyncio.subprocess.Process) -> None:
    """Kill the command and everything it started (its session), or the command alone where there are none."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL)
        else:  # pragma: no cover
            process.kill()
