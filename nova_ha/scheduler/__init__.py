"""Scheduler filters and weighers loaded by nova-scheduler."""
