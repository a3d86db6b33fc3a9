"""nova-ha configuration options (oslo.config).

Every option group lives in its own module of this package, which exposes
``register_opts(conf)`` and ``list_opts()``. ``_MODULES`` is the one list of
them: ``register_opts`` registers all of them on a ConfigOpts (nova's global
``cfg.CONF`` inside nova-scheduler, the same global inside our daemons), and
``nova_ha.conf.opts.list_opts`` feeds oslo-config-generator.
"""

import importlib

from oslo_config import cfg

CONF = cfg.CONF

# Each module owns one option group. Keep the list sorted.
_MODULES = (
    'nova_ha.conf.capacity',
    'nova_ha.conf.coordination',
    'nova_ha.conf.fencing',
    'nova_ha.conf.guard',
    'nova_ha.conf.heartbeat',
    'nova_ha.conf.instance_ha',
    'nova_ha.conf.journal',
    'nova_ha.conf.maintenance',
    'nova_ha.conf.metrics',
    'nova_ha.conf.evacuator',
    'nova_ha.conf.nova',
    'nova_ha.conf.recovery_placement',
    'nova_ha.conf.scheduler',
    'nova_ha.conf.topology',
)


def modules():
    return [importlib.import_module(name) for name in _MODULES]


def register_opts(conf=CONF):
    for module in modules():
        module.register_opts(conf)


register_opts(CONF)
