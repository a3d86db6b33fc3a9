"""One Nova or Placement service as its own process, for the simulated cloud.

``python -m nova_ha.sim.novaproc SERVICE --config-file FILE [...]`` with
SERVICE one of ``api``, ``conductor``, ``scheduler``, ``compute`` or
``placement``. Each runs nova's (or placement's) own service code, exactly
as the console scripts of the wheels do; what is added is only what the sim
has no real service for:

- Glance and Neutron: nova's functional-test stand-ins (``GlanceFixture``,
  ``NeutronFixture``) are installed in every nova process. Both are
  stateless enough for that: the images are the same fixed set everywhere,
  and the sim's servers have no ports (``networks='none'``).
- Keystone: the API admits requests that carry the sim's token, as an admin
  of the sim's project (the same check as the in-process sim's,
  :func:`nova_ha.sim.http.token_auth`); placement runs with its own
  ``noauth2`` strategy and nova's services send it the token ``admin``.

The API and placement are served on 127.0.0.1 (``--port``) by the sim's
WSGI server with at most 10 requests at once, as uwsgi runs a fixed number
of threads.
"""

import os
import sys

SERVICES = ('api', 'conductor', 'scheduler', 'compute', 'placement')


class _FixtureHost:
    """The little of a nova TestCase that nova's Glance/Neutron fixtures
    use: flags, stub_out and useFixture, kept for the process's life."""

    def __init__(self):
        self._fixtures = []

    def useFixture(self, fixture):
        fixture.setUp()
        self._fixtures.append(fixture)
        return fixture

    def stub_out(self, old, new):
        import fixtures
        self.useFixture(fixtures.MonkeyPatch(old, new))

    def flags(self, **kw):
        from nova.conf import CONF
        group = kw.pop('group', None)
        for name, value in kw.items():
            CONF.set_override(name, value, group)


def _install_external_stand_ins():
    from nova_ha.sim import nova_internals
    host = _FixtureHost()
    host.useFixture(nova_internals.glance_fixture()(host))
    host.useFixture(nova_internals.neutron_fixture()(host))
    return host


def _after_parse_args(install):
    """Run `install` right after nova parses its configuration (the
    fixtures set options, which must exist and must not be reset)."""
    from nova import config
    parse_args = config.parse_args

    def wrapped(*args, **kwargs):
        result = parse_args(*args, **kwargs)
        install()
        return result
    config.parse_args = wrapped


def _serve_forever(app, port):
    import signal
    import threading

    from nova_ha.sim import http as sim_http
    server = sim_http.serve(app, port, bounded=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    print('listening on 127.0.0.1:%d' % port, flush=True)
    stop.wait()
    server.shutdown()


def _run_api(argv, port, token, project_id):
    from nova import config
    from nova import objects
    from oslo_log import log as logging

    from nova_ha.sim import nova_internals

    objects.register_all()
    config.parse_args([sys.argv[0]] + argv)
    logging.setup(config.CONF, 'nova')
    stand_ins = _install_external_stand_ins()
    # Keystone stand-in, nova's own (OSAPIFixture's): no token validation
    # middleware; the request context comes from the headers token_auth
    # sets.
    nova_internals.stub_keystone(stand_ins)

    from nova.api import wsgi
    from nova_ha.sim import http as sim_http
    nova_internals.setup_api_service(config.CONF.host, 'osapi_compute')
    app = wsgi.Loader().load_app('osapi_compute')
    _serve_forever(sim_http.token_auth(app, token, project_id), port)


def _run_placement(config_dir, port, token):
    os.environ['OS_PLACEMENT_CONFIG_DIR'] = config_dir
    from placement.wsgi import init_application

    from nova_ha.sim import http as sim_http
    app = init_application()
    if token:
        app = sim_http.placement_token(app, token)
    _serve_forever(app, port)


def _exit_with_parent():
    """The sim starts this process; if the sim dies without stopping it
    (SIGKILL), go too rather than run on as an orphan."""
    import threading
    import time
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)
    threading.Thread(target=watch, name='exit-with-parent',
                     daemon=True).start()


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(prog='nova_ha.sim.novaproc')
    parser.add_argument('service', choices=SERVICES)
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--token', default=os.environ.get('NOVA_HA_SIM_TOKEN'))
    parser.add_argument('--project-id', default='')
    parser.add_argument('--placement-config-dir')
    args, rest = parser.parse_known_args(argv)
    _exit_with_parent()
    if args.service == 'placement':
        return _run_placement(args.placement_config_dir, args.port,
                              args.token)
    # The release's threading mode (nova_internals: native threads on nova
    # 34, eventlet before), inherited from the sim through the environment;
    # nova.cmd modules patch on import, the API is patched here.
    from nova_ha.sim import nova_internals
    if args.service == 'api':
        nova_internals.monkey_patch()
        return _run_api(rest, args.port, args.token, args.project_id)
    nova_internals.select_threading_mode()
    import importlib
    module = importlib.import_module('nova.cmd.%s' % args.service)
    if args.service == 'compute':
        # After nova.cmd (which patches on import): the sim's driver.
        from nova_ha.sim import fake_driver  # noqa: F401
    _after_parse_args(_install_external_stand_ins)
    sys.argv = [sys.argv[0]] + rest
    return module.main()


if __name__ == '__main__':
    sys.exit(main())
