"""The power step of a drain: off after ``--power-off``, on at ``complete``.

A drain needs only :class:`Power` (``power_off(host)`` and
``power_on(host)``, each returning ``(ok, reason)``). :class:`FencerPower`
is the production one: nova-ha's fencing layer (:mod:`nova_ha.fencing`,
inventory ``[fencing] inventory_file``), which powers off and *reads* the
power state back before it says done.
"""

import logging

LOG = logging.getLogger(__name__)


class Power:
    def power_off(self, host):
        raise NotImplementedError

    def power_on(self, host):
        raise NotImplementedError


class NoPower(Power):
    """No power control configured: the power step fails with a reason."""

    def __init__(self, why):
        self.why = why

    def power_off(self, host):
        return False, self.why

    def power_on(self, host):
        return False, self.why


class FencerPower(Power):
    """Power through :class:`nova_ha.fencing.fencer.Fencer`."""

    def __init__(self, fencer):
        self.fencer = fencer

    @classmethod
    def from_conf(cls, conf):
        try:
            from nova_ha.fencing import fencer as fencer_mod
            from nova_ha.fencing import inventory as inventory_mod
            inv = inventory_mod.load(conf.fencing.inventory_file)
            return cls(fencer_mod.Fencer(
                inv, fencer_mod.FenceParams.from_conf(conf)))
        except Exception as exc:   # noqa: BLE001 -- reported, not raised
            return NoPower('no usable fencing inventory (%s)' % exc)

    def power_off(self, host):
        result = self.fencer.fence(host)
        return result.fenced, result.reason

    def power_on(self, host):
        status = self.fencer.power_on(host, wait=True)
        from nova_ha.fencing.base import Outcome
        return status.outcome is Outcome.FENCED, status.reason
