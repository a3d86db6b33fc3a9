"""oslo-config-generator hook (entry point ``oslo.config.opts: nova_ha``)."""

import nova_ha.conf


def list_opts():
    opts = []
    for module in nova_ha.conf.modules():
        opts.extend(module.list_opts())
    return opts
