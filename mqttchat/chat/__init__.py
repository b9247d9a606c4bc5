"""Chat over MQTT: the wire protocol, the ordered room model and local history. No Textual here."""
