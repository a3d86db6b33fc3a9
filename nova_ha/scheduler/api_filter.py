"""nova-api paste filter: refuse bad nova-ha scheduler hints with 400.

Without it, nova-api accepts any hint (its JSON schema allows additional
hints), the server goes to ERROR with nova's generic "No valid host was
found", and the bad hint is named only in the nova-scheduler log, where a
VNF manager cannot see it; the failed server also stays a member of its
server group. nova-api builds its WSGI pipeline from ``api-paste.ini``
(``[wsgi] api_paste_config``), which is the operator's file and the
supported place for middleware; this filter, in the ``/v2.1`` pipelines,
checks the ``os:scheduler_hints`` of ``POST /servers`` with the scheduler
filters' own parser (:func:`nova_ha.scheduler.request.check_hints`) and
answers like nova's own validation::

    HTTP 400 {"badRequest": {"code": 400, "message": "Invalid nova-ha
    scheduler hint: hint ha_anti_affinity_level='galaxy' is invalid: must
    be one of host, rack, power_domain, availability_zone,
    failure_domain"}}

Nothing is created: no server, no group membership. Levels come from
``[topology] levels`` of nova.conf (the scheduler's), ``failure_domain``
included. Install (doc/vnfm-guide.md, doc/operator-guide.md)::

    [filter:nova_ha_hints]
    paste.filter_factory = nova_ha.scheduler.api_filter:HintValidator.factory

    [composite:openstack_compute_api_v21]
    use = call:nova.api.auth:pipeline_factory_v21
    keystone = ... keystonecontext nova_ha_hints osapi_compute_app_v21

:func:`add_to_paste_config` does that edit on a copy of nova's file (the
simulated cloud's Nova runs with it).
"""

import hashlib
import io
import json
import os
import re
import tempfile

FILTER_NAME = 'nova_ha_hints'
FILTER_SECTION = ('[filter:%s]\npaste.filter_factory = '
                  'nova_ha.scheduler.api_filter:HintValidator.factory\n'
                  % FILTER_NAME)
_SERVERS = re.compile(r'^(/[^/]+)?/servers/?$')
_APP = 'osapi_compute_app_v21'


class HintValidator:
    """WSGI middleware: 400 for a ``POST /servers`` with a bad nova-ha
    hint; every other request goes through untouched."""

    def __init__(self, app, levels=None):
        self.app = app
        self._levels = levels

    @classmethod
    def factory(cls, global_config, **local_config):
        levels = local_config.get('levels')
        levels = [v.strip() for v in levels.split(',') if v.strip()] \
            if levels else None
        return lambda app: cls(app, levels)

    def levels(self):
        from nova_ha import topology
        if self._levels is not None:
            return topology.known_levels(self._levels)
        return topology.known_levels(topology.configured_levels())

    def __call__(self, environ, start_response):
        if environ.get('REQUEST_METHOD') != 'POST' or \
                not _SERVERS.match(environ.get('PATH_INFO', '')):
            return self.app(environ, start_response)
        try:
            length = int(environ.get('CONTENT_LENGTH') or 0)
        except ValueError:
            length = 0
        body = environ['wsgi.input'].read(length) if length > 0 else b''
        environ['wsgi.input'] = io.BytesIO(body)
        message = self.check(body)
        if message is None:
            return self.app(environ, start_response)
        payload = json.dumps({'badRequest': {
            'code': 400, 'message': message}}).encode('utf-8')
        start_response('400 Bad Request', [
            ('Content-Type', 'application/json'),
            ('Content-Length', str(len(payload)))])
        return [payload]

    def check(self, body):
        """The 400 message for this request body, or None if its nova-ha
        hints are usable (or it is not JSON: nova answers that)."""
        from nova_ha.scheduler import request
        try:
            data = json.loads(body or b'{}')
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        hints = data.get('os:scheduler_hints') or \
            data.get('OS-SCH-HNT:scheduler_hints')
        if not isinstance(hints, dict):
            return None
        try:
            request.check_hints(hints, self.levels())
        except request.BadInput as exc:
            return 'Invalid nova-ha scheduler hint: %s' % exc
        except Exception:   # noqa: BLE001 -- e.g. bad [topology] levels:
            return None     # the scheduler filters fail closed and log it
        return None


def add_to_paste_config(text):
    """nova's api-paste.ini text with the filter in both ``/v2.1``
    pipelines, just before the compute application."""
    if '[filter:%s]' % FILTER_NAME in text:
        return text
    out, count = re.subn(r'(?m)^(keystone|noauth2)(\s*=.*?)\s%s\s*$' % _APP,
                         r'\1\2 %s %s' % (FILTER_NAME, _APP), text)
    if not count:
        raise ValueError('api-paste.ini: no pipeline ending in %s' % _APP)
    return out.rstrip('\n') + '\n\n' + FILTER_SECTION


def paste_config_with_filter(source):
    """A copy of the api-paste.ini at ``source`` with the filter, in the
    temporary directory, named after its content (written once); its
    path."""
    with open(source) as f:
        text = add_to_paste_config(f.read())
    digest = hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]
    path = os.path.join(tempfile.gettempdir(),
                        'nova-ha-api-paste-%s.ini' % digest)
    if not os.path.exists(path):
        tmp = '%s.%d' % (path, os.getpid())
        with open(tmp, 'w') as f:
            f.write(text)
        os.replace(tmp, path)
    return path
