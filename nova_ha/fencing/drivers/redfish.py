"""Redfish fencing through sushy: ``ComputerSystem.Reset`` with ``ForceOff``.

``ForceOff`` is a hard power-off (no OS shutdown that a wedged kernel could
ignore). Many BMCs apply it asynchronously -- the action returns 204 and
``PowerState`` goes ``PoweringOff`` then ``Off`` seconds later -- so the
driver only *asks*; ``fence()`` polls ``PowerState`` until it reads ``Off``.
``PoweringOff`` counts as on.

TLS: the BMC's certificate is verified by default. Per host,
``verify_tls: false`` turns verification off (self-signed BMC
certificates), or ``verify_tls: /path/to/ca.pem`` verifies against that CA.

Authentication: HTTP basic by default (one round trip less per call; every
Redfish service must accept it); ``auth: session`` uses the SessionService
(X-Auth-Token) instead.

Connections are kept between calls (the Fencer drops them after an error).
sushy's own transport retries are reduced to one attempt: retries and
their back-off are fence()'s job, bounded by its timeouts.
"""

import logging
import os
import time
import warnings

from nova_ha.fencing import base
from nova_ha.fencing import inventory

LOG = logging.getLogger(__name__)
SYSTEMS_PREFIX = '/redfish/v1/Systems/'


_QUIETED = []


def _quiet_insecure_warning():
    # A process-wide filter (warnings.catch_warnings is not thread-safe),
    # installed only once a host is configured with verify_tls: false.
    if not _QUIETED:
        from urllib3.exceptions import InsecureRequestWarning
        warnings.filterwarnings('ignore', category=InsecureRequestWarning)
        _QUIETED.append(True)


class RedfishDriver(base.FenceDriver):
    """``driver: redfish`` -- address (https URL, or host + port),
    username, password; optional ``system_id`` (id or path under
    /redfish/v1/Systems; default: the only system), ``verify_tls`` (true,
    false or a CA bundle path; default true), ``auth`` (basic|session)."""

    name = 'redfish'
    capabilities = frozenset([base.CAP_POWER_STATE, base.CAP_POWER_OFF,
                              base.CAP_POWER_ON, base.CAP_HARD_OFF,
                              base.CAP_ASYNC_OFF, base.CAP_TLS_VERIFY])
    fields = frozenset(['system_id', 'verify_tls', 'auth'])

    @classmethod
    def validate(cls, entry):
        h = entry.host
        if not entry.address:
            raise inventory.error(h, 'address', 'missing (Redfish URL such '
                                  'as https://10.0.0.5, or an address)')
        addr = entry.address
        if '://' in addr:
            parsed = inventory.check_url(h, addr)
            if parsed.port and entry.port and parsed.port != entry.port:
                raise inventory.error(h, 'port', '%d contradicts the port in '
                                      'address %s' % (entry.port, addr))
            port = entry.port or parsed.port
            netloc = parsed.hostname
            if ':' in netloc:
                netloc = '[%s]' % netloc
            url = '%s://%s%s' % (parsed.scheme, netloc,
                                 ':%d' % port if port else '')
        else:
            if not inventory.valid_address(addr):
                raise inventory.error(h, 'address', 'not a URL, IP address '
                                      'or DNS name: %r' % addr)
            host = addr
            if ':' in host and not host.startswith('['):
                host = '[%s]' % host
            url = 'https://%s%s' % (host, ':%d' % entry.port
                                    if entry.port else '')
        entry.options['url'] = url
        if not entry.username:
            raise inventory.error(h, 'username', 'missing (Redfish user)')
        if not entry.password:
            raise inventory.error(h, 'password', 'missing (password or '
                                  'password_file)')
        verify = entry.get('verify_tls', True)
        if isinstance(verify, str):
            if verify.lower() in ('true', 'yes', 'on'):
                verify = True
            elif verify.lower() in ('false', 'no', 'off'):
                verify = False
            elif not os.path.exists(verify):
                raise inventory.error(h, 'verify_tls', 'CA bundle %s does not '
                                      'exist (use true, false or a CA '
                                      'file path)' % verify)
        elif not isinstance(verify, bool):
            raise inventory.error(h, 'verify_tls', 'must be true, false or a '
                                  'CA file path, not %r' % (verify,))
        entry.options['verify_tls'] = verify
        auth = entry.get('auth', 'basic')
        if auth not in ('basic', 'session'):
            raise inventory.error(h, 'auth', 'must be basic or session, not '
                                  '%r' % (auth,))
        entry.options['auth'] = auth
        system = entry.get('system_id')
        if system is not None:
            if not isinstance(system, str) or not system.strip('/'):
                raise inventory.error(h, 'system_id', 'must be a system id '
                                      'or path, not %r' % (system,))
            if not system.startswith('/'):
                system = SYSTEMS_PREFIX + system
            entry.options['system_id'] = system.rstrip('/')

    def __init__(self, entry, params, inventory=None):
        super().__init__(entry, params, inventory)
        self._conn = None
        self._system = None

    # -- helpers ---------------------------------------------------------

    def _where(self):
        return self.entry.options['url']

    def _translate(self, exc, what):
        """sushy/requests exception -> FencingError (no secrets)."""
        import requests
        from sushy import exceptions as sx
        e = self.entry
        if isinstance(exc, sx.AccessError):
            return base.BMCAuthError(
                'Redfish BMC %s refused the credentials of user %s '
                '(HTTP %s) on %s' % (self._where(), e.username,
                                     exc.status_code, what))
        if isinstance(exc, sx.ConnectionError):
            inner = getattr(exc, 'kwargs', {}).get('error')
            text = str(inner) if inner is not None else str(exc)
            if isinstance(inner, requests.exceptions.SSLError) or \
                    'CERTIFICATE_VERIFY_FAILED' in text:
                err = base.BMCConfigError(
                    'Redfish BMC %s: TLS certificate verification failed '
                    '(set verify_tls to a CA file, or false to skip '
                    'verification): %s' % (self._where(), _short(text)))
                return err
            return base.BMCUnreachable(
                'Redfish BMC %s did not answer %s: %s'
                % (self._where(), what, _short(text)))
        if isinstance(exc, sx.ResourceNotFoundError):
            # Wrong system_id or URL: a configuration problem, not retried.
            return base.BMCConfigError(
                'Redfish BMC %s: %s: not found (check address and '
                'system_id): %s' % (self._where(), what, _short(str(exc))))
        if isinstance(exc, sx.UnknownDefaultError):
            return base.BMCConfigError(
                'Redfish BMC %s: no system_id given and the BMC does not '
                'have exactly one system: %s' % (self._where(),
                                                 _short(str(exc))))
        if isinstance(exc, sx.HTTPError):
            return base.BMCError('Redfish BMC %s: %s failed: HTTP %s %s'
                                 % (self._where(), what, exc.status_code,
                                    _short(getattr(exc, 'detail', None)
                                           or str(exc))))
        if isinstance(exc, requests.exceptions.RequestException):
            return base.BMCUnreachable('Redfish BMC %s did not answer %s: %s'
                                       % (self._where(), what,
                                          _short(str(exc))))
        if isinstance(exc, sx.SushyError):
            return base.BMCError('Redfish BMC %s: %s failed: %s'
                                 % (self._where(), what, _short(str(exc))))
        return None

    def _set_timeout(self, timeout, sushy_conn=None):
        conn = getattr(sushy_conn or self._conn, '_conn', None)
        if conn is not None and hasattr(conn, '_default_request_timeout'):
            conn._default_request_timeout = timeout
            conn._connect_timeout = timeout

    def _with(self, what, timeout, fn):
        # A first call makes three requests (service root, system, the
        # call itself): each gets what is left of ``timeout``, so the whole
        # call stays within it.
        deadline = time.monotonic() + timeout
        try:
            if self._conn is None:
                self._connect(deadline)
            self._set_timeout(_left(deadline))
            return fn()
        except base.FencingError:
            raise
        except Exception as exc:  # noqa: BLE001
            err = self._translate(exc, what)
            if err is None:
                raise
            raise type(err)(base.redact(err.reason, *self.entry.secrets()))

    def _connect(self, deadline):
        import sushy
        from sushy import auth as sushy_auth
        e = self.entry
        cls = (sushy_auth.BasicAuth if e.get('auth') == 'basic'
               else sushy_auth.SessionAuth)
        auth = cls(username=e.username, password=e.password.reveal())
        if e.get('verify_tls') is False:
            # The operator's explicit choice: said once per connection
            # here, rather than by urllib3 on every request.
            LOG.warning('fence %s: Redfish BMC %s: TLS certificate '
                        'verification disabled (verify_tls: false)',
                        e.host, e.options['url'])
            _quiet_insecure_warning()
        conn = sushy.Sushy(
            e.options['url'], auth=auth, verify=e.get('verify_tls'),
            server_side_retries=1, server_side_retries_delay=0.1,
            read_timeout=_left(deadline), connect_timeout=_left(deadline))
        # Only a complete connection (service root and system) is kept.
        self._set_timeout(_left(deadline), conn)
        system = conn.get_system(e.get('system_id'))
        self._conn, self._system = conn, system

    # -- interface -------------------------------------------------------

    def get_power_state(self, timeout):
        def read():
            self._system.refresh(force=True)
            return self._system.power_state
        state = self._with('power state', timeout, read)
        if state is None:
            raise base.BMCError('Redfish BMC %s: system %s has no PowerState'
                                % (self._where(), self._system.path))
        # sushy >= 5 gives a PowerState enum ('Off'), older a string.
        value = str(getattr(state, 'value', state)).strip().lower()
        return base.POWER_OFF if value == 'off' else base.POWER_ON

    def power_off(self, timeout):
        import sushy
        self._with('ForceOff', timeout,
                   lambda: self._system.reset_system(sushy.RESET_FORCE_OFF))

    def power_on(self, timeout):
        import sushy
        self._with('On', timeout,
                   lambda: self._system.reset_system(sushy.RESET_ON))

    def close(self):
        conn, self._conn, self._system = self._conn, None, None
        inner = getattr(conn, '_conn', None)
        if inner is not None and hasattr(inner, 'close'):
            try:
                inner.close()
            except Exception:   # noqa: BLE001
                pass


def _left(deadline):
    """Seconds to the deadline: each request may use all that is left."""
    return max(deadline - time.monotonic(), 0.05)


def _short(text, limit=300):
    text = ' '.join(str(text).split())
    return text if len(text) <= limit else text[:limit] + '...'
