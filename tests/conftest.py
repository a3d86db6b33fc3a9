"""pytest set-up shared by every test.

Nova must be monkey patched (or told not to be) before anything else
imports it, as the installed release needs (native threads on nova 34,
eventlet on nova 31 and 33; NOVA_HA_NOVA_THREADING overrides):
nova_ha.sim.novastack does that on import, so import it first. Eventlet
mode must run serially (-p no:xdist): make matrix does.
"""
import nova_ha.sim.novastack  # noqa: F401
