"""Make one of our clients stop reading its socket, as a stuck or slow subscriber does, and read again.

Pausing the transport alone is not enough: the client pauses and resumes reading itself (a big read is handled
over several turns of the loop; back-to-back small reads pause for a millisecond, READ_PAUSE), and its resume
would undo the test's pause. Marking the client's reading as paused keeps it from resuming until
:func:`start_reading`.
"""

from __future__ import annotations

from mqttchat.client import MQTTClient


def stop_reading(client: MQTTClient) -> None:
    """The client reads nothing more (so it acknowledges nothing more) until :func:`start_reading`."""
    link = client._link
    assert link is not None, "the client is not connected"
    client._reading_paused = True
    link.transport.pause_reading()


def start_reading(client: MQTTClient) -> None:
    link = client._link
    assert link is not None, "the client is not connected"
    client._reading_paused = False
    link.transport.resume_reading()
