"""Maintenance: drain a compute host within each VNF's limits."""
