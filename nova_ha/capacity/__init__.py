"""Failover-capacity admission control (doc/capacity.md)."""
