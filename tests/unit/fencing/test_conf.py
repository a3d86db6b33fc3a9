"""[fencing] options: registered through nova_ha.conf, sane defaults,
FenceParams built from them."""

from oslo_config import cfg

import nova_ha.conf
from nova_ha.conf import fencing as fencing_conf
from nova_ha.fencing import fencer


def test_registered_and_listed():
    assert 'nova_ha.conf.fencing' in nova_ha.conf._MODULES
    groups = [g for g, _ in fencing_conf.list_opts()]
    assert [g.name for g in groups] == ['fencing']
    names = {o.name for o in fencing_conf.OPTS}
    assert {'inventory_file', 'command_timeout', 'power_off_timeout',
            'fence_timeout', 'poll_interval', 'retries', 'retry_backoff',
            'retry_backoff_max', 'ipmitool_path'} <= names


def test_params_from_conf():
    conf = cfg.ConfigOpts()
    fencing_conf.register_opts(conf)
    conf([], project='nova-ha', default_config_files=[])
    p = fencer.FenceParams.from_conf(conf)
    assert p == fencer.FenceParams()     # defaults agree
    conf.set_override('fence_timeout', 7.5, group='fencing')
    conf.set_override('retries', 0, group='fencing')
    p = fencer.FenceParams.from_conf(conf)
    assert p.fence_timeout == 7.5 and p.retries == 0


def test_no_secret_options():
    # BMC credentials live in the inventory file, never in options.
    for opt in fencing_conf.OPTS:
        assert 'password' not in opt.name
