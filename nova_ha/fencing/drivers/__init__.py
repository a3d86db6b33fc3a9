"""Fencing drivers (entry points in ``nova_ha.fencing_drivers``)."""
