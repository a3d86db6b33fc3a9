"""Instance HA policy (issue 17): flavor extra spec, then the image
property read from the Image service (a real keystoneauth session against
an HTTP server on loopback), then [instance_ha] default_recovery."""

import http.server
import json
import threading
import types

import pytest
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint
from oslo_config import cfg

import nova_ha.conf
from nova_ha import nova_ops
from nova_ha.evacuator import instance_ha


class Glance:
    """GET /v2/images/<id> of a dict of images; ``status`` forces an
    answer; counts the requests."""

    def __init__(self):
        self.images = {}
        self.status = None
        self.requests = []
        glance = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                glance.requests.append(self.path)
                image_id = self.path.rsplit('/', 1)[-1]
                code = glance.status or (
                    200 if image_id in glance.images else 404)
                body = json.dumps(dict(glance.images.get(image_id, {}),
                                       id=image_id)).encode()
                self.send_response(code)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      Handler)
        self.url = 'http://127.0.0.1:%d' % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def glance():
    g = Glance()
    yield g
    g.stop()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make_ha(endpoint, clock):
    conf = cfg.ConfigOpts()
    nova_ha.conf.register_opts(conf)
    conf([], project='nova-ha-test')
    sess = ks_session.Session(auth=token_endpoint.Token(endpoint, 'tok'))
    nova = types.SimpleNamespace(client=types.SimpleNamespace(session=sess))
    ev = types.SimpleNamespace(conf=conf, ops=nova_ops.NovaOps(nova),
                               journal=None, receiver=None)
    ha = instance_ha.InstanceHA(ev, clock=clock)
    return ha


def server(image='img-1', **specs):
    return types.SimpleNamespace(
        id='srv-1', image={'id': image} if image else '',
        flavor={'extra_specs': specs})


def test_flavor_then_image_then_default(glance):
    clock = Clock()
    ha = make_ha(glance.url, clock)
    try:
        glance.images['img-1'] = {instance_ha.SPEC: 'none'}
        glance.images['img-2'] = {}
        assert ha.policy(server(**{instance_ha.SPEC: 'rebuild-elsewhere'})) \
            == ('rebuild-elsewhere', 'flavor')
        assert ha.policy(server()) == ('none', 'image')
        assert ha.policy(server('img-2')) == (
            'restart', '[instance_ha] default_recovery')
        # Booted from a volume (no image): no Image service call.
        n = len(glance.requests)
        assert ha.policy(server(image=None))[0] == 'restart'
        assert len(glance.requests) == n
    finally:
        ha.stop()


def test_image_value_reused_then_read_again(glance):
    clock = Clock()
    ha = make_ha(glance.url, clock)
    try:
        glance.images['img-1'] = {instance_ha.SPEC: 'none'}
        assert ha.policy(server()) == ('none', 'image')
        glance.images['img-1'] = {instance_ha.SPEC: 'rebuild-elsewhere'}
        clock.now += instance_ha.IMAGE_POLICY_TTL - 1
        assert ha.policy(server()) == ('none', 'image')
        assert len(glance.requests) == 1
        clock.now += 2
        assert ha.policy(server()) == ('rebuild-elsewhere', 'image')
    finally:
        ha.stop()


def test_image_service_down_is_not_forever(glance, caplog):
    """A failing Image service: the last value read stands (none before:
    the default), a warning names the image, and it is asked again after
    IMAGE_RETRY_AFTER -- not given up on for the life of the process."""
    clock = Clock()
    ha = make_ha(glance.url, clock)
    try:
        glance.images['img-1'] = {instance_ha.SPEC: 'none'}
        glance.status = 503
        assert ha.policy(server())[0] == 'restart'
        assert 'img-1' in caplog.text and 'HTTP 503' in caplog.text
        glance.status = None
        clock.now += instance_ha.IMAGE_RETRY_AFTER / 2
        assert ha.policy(server())[0] == 'restart'      # not asked yet
        assert len(glance.requests) == 1
        clock.now += instance_ha.IMAGE_RETRY_AFTER
        assert ha.policy(server()) == ('none', 'image')
        # Once known, an outage of the Image service keeps the value.
        clock.now += instance_ha.IMAGE_POLICY_TTL + 1
        glance.status = 500
        assert ha.policy(server()) == ('none', 'image')
    finally:
        ha.stop()


def test_unreachable_image_service_and_bad_value(caplog):
    clock = Clock()
    ha = make_ha('http://127.0.0.1:9', clock)     # nothing listens
    try:
        assert ha.policy(server())[0] == 'restart'
        assert 'cannot read image img-1' in caplog.text
    finally:
        ha.stop()
    g = Glance()
    ha = make_ha(g.url, clock)
    try:
        g.images['img-1'] = {instance_ha.SPEC: 'reboot'}
        assert ha.policy(server())[0] == 'restart'
        assert "image img-1 property ha:instance_recovery='reboot'" in \
            caplog.text
    finally:
        ha.stop()
        g.stop()
