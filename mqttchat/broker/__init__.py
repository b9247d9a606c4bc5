"""The embedded MQTT broker: listeners, sessions, routing, retained messages, security and persistence."""
