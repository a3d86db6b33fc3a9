"""nova_ha.nova_api: the keystoneauth session every nova-ha part uses."""

from oslo_config import cfg

from nova_ha import nova_api
from nova_ha.conf import evacuator as evacuator_conf
from nova_ha.conf import nova as nova_conf


def _conf(tmp_path, extra='', evacuator=True):
    path = tmp_path / 'nova-ha.conf'
    path.write_text('[nova]\nauth_type = admin_token\n'
                    'endpoint = http://127.0.0.1:1/v2.1\ntoken = t\n'
                    + extra)
    conf = cfg.ConfigOpts()
    nova_conf.register_opts(conf)
    if evacuator:
        evacuator_conf.register_opts(conf)
    conf([], default_config_files=[str(path)])
    return conf


def test_session_keeps_a_connection_per_concurrent_evacuation(tmp_path):
    """A burst's evacuate calls all reuse kept connections: the pool holds
    at least [evacuator] max_concurrent_evacuations (requests' default of
    10 threw half of a 20-call burst's connections away)."""
    conf = _conf(tmp_path)
    sess = nova_api.session_from_conf(conf)
    for scheme in ('http://', 'https://'):
        adapter = sess.session.get_adapter(scheme + '127.0.0.1')
        assert adapter._pool_maxsize >= \
            conf.evacuator.max_concurrent_evacuations
        # keystoneauth's own adapter, as on the sessions it makes.
        assert type(adapter).__name__ == 'TCPKeepAliveAdapter'


def _pool(conf):
    sess = nova_api.session_from_conf(conf)
    return sess.session.get_adapter('http://127.0.0.1')._pool_maxsize


def test_pool_follows_a_larger_max_concurrent_evacuations(tmp_path):
    """An operator who raises the burst size gets the connections for it:
    the pool is derived from the option, not fixed."""
    conf = _conf(tmp_path, '[evacuator]\nmax_concurrent_evacuations = 50\n')
    assert _pool(conf) >= 50


def test_pool_without_the_evacuator_options(tmp_path):
    """The CLI and maintenance load no [evacuator] options: they get the
    default pool, not an error."""
    conf = _conf(tmp_path, evacuator=False)
    assert _pool(conf) == nova_api.POOL_SIZE
