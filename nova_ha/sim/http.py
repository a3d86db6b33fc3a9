"""HTTP endpoints of the simulated cloud, on 127.0.0.1 only.

- The Nova compute API (``/v2.1``): nova's own WSGI application behind a
  fixed-token check. Send ``X-Auth-Token: <token>`` (from the state file);
  the request then acts as an admin of the sim's project, as nova's
  functional fixtures do. keystoneauth1's ``admin_token`` plugin
  (``endpoint=<api endpoint>, token=<token>``) is all a client needs.
- The control API the virtual BMCs and ``nova-ha-sim inject/heal`` use::

      GET    /hosts                    every host's state
      GET    /hosts/NAME               one host
      GET    /hosts/NAME/power         {"power": "on"|"off"}
      PUT    /hosts/NAME/power         {"power": "on"|"off"}   (BMC)
      POST   /hosts/NAME/faults        {"fault": FAULT}        (inject)
      DELETE /hosts/NAME/faults                                (heal)
      POST   /shutdown
"""

import hmac
import json
import logging
import socketserver
import threading
from wsgiref import simple_server

LOG = logging.getLogger(__name__)


class _ThreadingWSGIServer(socketserver.ThreadingMixIn,
                           simple_server.WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: a client that opens 20
    # connections at once (an evacuator evacuating a host) gets resets.
    request_queue_size = 128


class _BoundedWSGIServer(_ThreadingWSGIServer):
    """At most `max_threads` requests at once; more wait in the listen
    backlog. A thread per request without a bound is not how an API is
    deployed (uwsgi/mod_wsgi run a fixed number of threads): a burst then
    wants more database connections than oslo.db's pool (5 + 10) holds
    and waits 30 s for one, or exceeds the server's limit."""

    max_threads = 10

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(self.max_threads)

    def process_request(self, request, client_address):
        self._slots.acquire()
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, fmt, *args):
        LOG.debug('%s - %s', self.address_string(), fmt % args)


def serve(app, port, bounded=False):
    server = simple_server.make_server(
        '127.0.0.1', port, app,
        server_class=_BoundedWSGIServer if bounded else _ThreadingWSGIServer,
        handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever,
                              name='sim-http-%d' % port, daemon=True)
    thread.start()
    return server


#: Where the sim answers the identity version discovery (below).
IDENTITY_PATH = '/identity/v3'


def identity_version(environ, start_response):
    """Keystone's v3 version document, nothing more.

    The sim runs no Keystone: its token is admitted as admin (token_auth).
    But OpenStackClient's ``flavor create`` builds an identity v3 client
    before it sends anything (to look up ``--project``), and with the
    ``admin_token`` plugin the SDK takes the one endpoint given (Nova's
    /v2.1) for identity too and refuses it ("requires API version '3'").
    ``OS_IDENTITY_ENDPOINT_OVERRIDE=<api>/identity/v3`` (STATE_DIR/openrc)
    points it here; any identity call beyond discovery is refused (501).
    """
    path = environ.get('PATH_INFO', '').rstrip('/')
    if path != IDENTITY_PATH:
        return _json(start_response, '501 Not Implemented', {'error': {
            'code': 501, 'message': 'the simulated cloud runs no Keystone '
            '(only its version document): %s' % path}})
    base = '%s://%s' % (environ.get('wsgi.url_scheme', 'http'),
                        environ.get('HTTP_HOST', '127.0.0.1'))
    return _json(start_response, '200 OK', {'version': {
        'id': 'v3.14', 'status': 'stable',
        'updated': '2020-04-07T00:00:00Z',
        'links': [{'rel': 'self', 'href': base + IDENTITY_PATH + '/'}],
        'media-types': [{'base': 'application/json',
                         'type': 'application/vnd.openstack.identity-v3'
                                 '+json'}]}})


def token_auth(app, token, project_id):
    """Admit requests bearing the sim's token, as an admin of project_id;
    answer identity version discovery (:func:`identity_version`)."""
    expected = token.encode()

    def middleware(environ, start_response):
        if environ.get('PATH_INFO', '').startswith('/identity'):
            return identity_version(environ, start_response)
        given = environ.get('HTTP_X_AUTH_TOKEN', '').encode()
        if not hmac.compare_digest(given, expected):
            body = json.dumps({'error': {
                'code': 401, 'message': 'missing or wrong X-Auth-Token'}})
            start_response('401 Unauthorized',
                           [('Content-Type', 'application/json')])
            return [body.encode()]
        environ['HTTP_X_AUTH_USER'] = 'admin'
        environ['HTTP_X_AUTH_PROJECT_ID'] = project_id
        environ['HTTP_X_ROLES'] = 'reader,member,admin'
        return app(environ, start_response)
    return middleware


def placement_token(app, token):
    """The multi-process sim's placement runs noauth2, where only the
    token ``admin`` is an admin (nova's own services use it): admit the
    sim's token, which the evacuators and ``nova-ha`` hold, as that admin
    too. Any other token passes through unchanged."""
    expected = token.encode()

    def middleware(environ, start_response):
        given = environ.get('HTTP_X_AUTH_TOKEN', '').encode()
        if given and hmac.compare_digest(given, expected):
            environ['HTTP_X_AUTH_TOKEN'] = 'admin'
        return app(environ, start_response)
    return middleware


#: Where the in-process sim answers placement reads (below).
PLACEMENT_PATH = '/placement'


def placement_reads(app, placement_get):
    """Serve GETs under PLACEMENT_PATH from the in-process placement (nova's
    fixture answers only inside the sim's process): what the evacuator's
    recovery placement and ``nova-ha capacity check`` read, through
    ``[capacity] placement_endpoint``. Writes stay Nova's own."""
    def middleware(environ, start_response):
        path = environ.get('PATH_INFO', '')
        if not path.startswith(PLACEMENT_PATH):
            return app(environ, start_response)
        if environ['REQUEST_METHOD'] != 'GET':
            return _json(start_response, '405 Method Not Allowed', {
                'error': {'code': 405, 'message': 'the sim serves placement '
                          'reads only'}})
        url = path[len(PLACEMENT_PATH):] or '/'
        if environ.get('QUERY_STRING'):
            url += '?' + environ['QUERY_STRING']
        version = environ.get('HTTP_OPENSTACK_API_VERSION', '')
        version = version.split()[-1] if version.startswith('placement ') \
            else None
        resp = placement_get(url, version)
        start_response('%d %s' % (resp.status_code, resp.reason or ''), [
            ('Content-Type', resp.headers.get('Content-Type',
                                              'application/json')),
            ('Content-Length', str(len(resp.content)))])
        return [resp.content]
    return middleware


def serve_nova_api(app, port, token, project_id, placement_get=None):
    if placement_get is not None:
        app = placement_reads(app, placement_get)
    return serve(token_auth(app, token, project_id), port)


def _json(start_response, status, body):
    data = json.dumps(body).encode()
    start_response(status, [('Content-Type', 'application/json'),
                            ('Content-Length', str(len(data)))])
    return [data]


def control_app(cloud):
    from nova_ha.sim.cloud import SimError

    def app(environ, start_response):
        method = environ['REQUEST_METHOD']
        parts = [p for p in environ.get('PATH_INFO', '').split('/') if p]
        try:
            length = int(environ.get('CONTENT_LENGTH') or 0)
            body = json.loads(environ['wsgi.input'].read(length) or b'{}') \
                if length else {}
            if parts == ['hosts'] and method == 'GET':
                return _json(start_response, '200 OK', {'hosts': [
                    h.as_dict() for h in cloud.hosts.values()]})
            if parts == ['shutdown'] and method == 'POST':
                threading.Thread(target=cloud.request_shutdown,
                                 daemon=True).start()
                return _json(start_response, '202 Accepted', {})
            if len(parts) >= 2 and parts[0] == 'hosts':
                host = cloud.host(parts[1])
                rest = parts[2:]
                if not rest and method == 'GET':
                    return _json(start_response, '200 OK', host.as_dict())
                if rest == ['power'] and method == 'GET':
                    return _json(start_response, '200 OK',
                                 {'power': host.power})
                if rest == ['power'] and method == 'PUT':
                    return _json(start_response, '200 OK',
                                 cloud.set_power(host.name, body.get('power')))
                if rest == ['faults'] and method == 'POST':
                    return _json(start_response, '200 OK',
                                 cloud.inject(host.name, body.get('fault')))
                if rest == ['faults'] and method == 'DELETE':
                    return _json(start_response, '200 OK',
                                 cloud.heal(host.name))
            return _json(start_response, '404 Not Found',
                         {'error': 'no such resource: %s %s'
                          % (method, environ.get('PATH_INFO'))})
        except SimError as exc:
            status = ('404 Not Found' if str(exc).startswith('unknown host')
                      else '400 Bad Request')
            return _json(start_response, status, {'error': str(exc)})
        except ValueError as exc:
            return _json(start_response, '400 Bad Request',
                         {'error': 'bad request body: %s' % exc})
    return app


def serve_control(cloud, port):
    return serve(control_app(cloud), port)
