"""Black-box conformance of the broker process, one module per section. Keepalive, and the wills, session and
message expiry that wait on time, are in tests/broker/test_in_memory.py (our client against the broker in memory,
the clock moved by the test instead of a sleep of 1.5-2 s each)."""
