"""nova_ha.nova_api: the keystoneauth session every nova-ha part uses."""

from oslo_config import cfg

from nova_ha import nova_api
from nova_ha.conf import evacuator as evacuator_conf
from nova_ha.conf import nova as nova_conf


def _conf(tmp_path):
    path = tmp_path / 'nova-ha.conf'
    path.write_text('[nova]\nauth_type = admin_token\n'
                    'endpoint = http://127.0.0.1:1/v2.1\ntoken = t\n')
    conf = cfg.ConfigOpts()
    nova_conf.register_opts(conf)
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
