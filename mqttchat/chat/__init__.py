"""Chat over MQTT: the wire protocol, the ordered room model and local history. No Textual here."""

from __future__ import annotations

from pathlib import Path

#: The ACL that makes chat identities unforgeable on the embedded broker (see docs/chat-protocol.md).
CHAT_ACL = Path(__file__).with_name("chat.acl")
