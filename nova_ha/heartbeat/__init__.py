"""Authenticated per-plane heartbeats.

* :mod:`.protocol` -- packet format, HMAC signing/verification (Keyring).
* :mod:`.agent` -- sender (Agent; AgentGroup runs many in one thread).
* :mod:`.receiver` -- the evacuator's receiver (HeartbeatReceiver).
* :mod:`.watchdog` -- the agent's process watchdog (restart with back-off).

Operator documentation: doc/heartbeat.md.
"""
