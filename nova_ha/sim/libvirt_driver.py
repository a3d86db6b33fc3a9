"""A nova fake-virt driver that also runs a real libvirt domain per server.

``compute_driver = nova_ha_libvirt.LibvirtBackedFakeDriver`` (nova loads
drivers from ``nova.virt`` only; importing this module makes it
``nova.virt.nova_ha_libvirt``), with :func:`attach` telling which compute hosts
have a libvirtd: Nova keeps its fake accounting (MediumFakeDriver), and for
every server on an attached host the driver defines and starts a tiny diskless
TCG domain whose UUID is the instance's UUID -- what Nova's libvirt driver
would do, minus disks and networks. A hard reboot destroys and starts the
domain again, power off/on stop and start it, delete and a move away undefine
it. So a ``kill -9`` of the domain's qemu is a real instance crash that the
agent's libvirt monitor sees, and the evacuator's hard reboot through the Nova
API really brings the domain back.

Hosts not attached behave exactly like MediumFakeDriver. Attach each host
to its own libvirtd (one host's domains are its own, as on real hosts).
"""

import logging
import sys
import threading

from nova.virt import fake

from nova_ha.sim import libvirtd as lv

LOG = logging.getLogger(__name__)

#: ``[DEFAULT] compute_driver`` value of this driver.
DRIVER = 'nova_ha_libvirt.LibvirtBackedFakeDriver'
sys.modules.setdefault('nova.virt.nova_ha_libvirt', sys.modules[__name__])

_URIS = {}          # compute host -> libvirt URI
_MEMORY = {}        # compute host -> MiB per domain
_lock = threading.Lock()


def attach(host, uri, memory_mib=32):
    """Servers on `host` get a real domain on libvirtd `uri`."""
    with _lock:
        _URIS[host] = uri
        _MEMORY[host] = memory_mib


def detach(host=None):
    with _lock:
        if host is None:
            _URIS.clear()
        else:
            _URIS.pop(host, None)


class LibvirtBackedFakeDriver(fake.MediumFakeDriver):

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi, read_only)
        self._conn = None
        self._conn_lock = threading.Lock()

    # -- libvirt --------------------------------------------------------------
    def _libvirt(self):
        uri = _URIS.get(self._host)
        if uri is None:
            return None
        import libvirt
        with self._conn_lock:
            if self._conn is None or not self._conn.isAlive():
                libvirt.registerErrorHandler(lambda ctx, err: None, None)
                self._conn = libvirt.open(uri)
            return self._conn

    def _domain(self, uuid, define=False):
        import libvirt
        conn = self._libvirt()
        if conn is None:
            return None
        try:
            return conn.lookupByUUIDString(uuid)
        except libvirt.libvirtError:
            if not define:
                return None
        return conn.defineXML(lv.domain_xml(
            uuid, memory_mib=_MEMORY.get(self._host, 32), host=self._host))

    def _retry(self, fn, *args):
        """Once more on a fresh connection if this one broke."""
        import libvirt
        try:
            return fn(*args)
        except libvirt.libvirtError as exc:
            with self._conn_lock:
                conn, self._conn = self._conn, None
            if conn is not None and conn.isAlive():
                raise
            LOG.warning('libvirt connection lost (%s); reconnecting', exc)
            return fn(*args)

    def _start(self, uuid):
        def start():
            dom = self._domain(uuid, define=True)
            if dom is not None and not dom.isActive():
                dom.create()
        self._retry(start)

    def _stop(self, uuid, undefine=False):
        def stop():
            dom = self._domain(uuid)
            if dom is None:
                return
            lv.destroy(dom)
            if undefine:
                dom.undefine()
        self._retry(stop)

    # -- nova's driver API ----------------------------------------------------
    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        super().spawn(context, instance, image_meta, injected_files,
                      admin_password, allocations, network_info=network_info,
                      block_device_info=block_device_info,
                      power_on=power_on, accel_info=accel_info)
        if power_on:
            self._start(instance.uuid)

    def reboot(self, context, instance, network_info, reboot_type,
               block_device_info=None, bad_volumes_callback=None,
               accel_info=None, share_info=None):
        super().reboot(context, instance, network_info, reboot_type,
                       block_device_info=block_device_info,
                       bad_volumes_callback=bad_volumes_callback,
                       accel_info=accel_info, share_info=share_info)
        if reboot_type.lower() == 'hard':
            self._stop(instance.uuid)
        self._start(instance.uuid)

    def power_off(self, instance, timeout=0, retry_interval=0):
        super().power_off(instance, timeout, retry_interval)
        self._stop(instance.uuid)

    def power_on(self, context, instance, network_info,
                 block_device_info=None, accel_info=None, share_info=None):
        super().power_on(context, instance, network_info,
                         block_device_info=block_device_info,
                         accel_info=accel_info, share_info=share_info)
        self._start(instance.uuid)

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        super().destroy(context, instance, network_info,
                        block_device_info=block_device_info,
                        destroy_disks=destroy_disks,
                        destroy_secrets=destroy_secrets)
        self._stop(instance.uuid, undefine=True)

    def migrate_disk_and_power_off(self, context, instance, dest, flavor,
                                   network_info, block_device_info=None,
                                   timeout=0, retry_interval=0):
        self._stop(instance.uuid, undefine=True)
        return super().migrate_disk_and_power_off(
            context, instance, dest, flavor, network_info,
            block_device_info=block_device_info, timeout=timeout,
            retry_interval=retry_interval)
