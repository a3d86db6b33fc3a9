"""pytest set-up shared by every test.

Nova must be monkey patched (or told not to be) before anything else
imports it; nova_ha.sim.novastack does that on import, so import it first.
"""
import os

os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')

import nova_ha.sim.novastack  # noqa: E402,F401
