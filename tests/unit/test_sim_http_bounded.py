"""The sim's bounded WSGI server (what --nova processes serves the Nova API
and placement with) runs at most max_threads requests at once and answers
every request of a larger burst."""

import threading
import urllib.request

from nova_ha.sim import cloud
from nova_ha.sim import http


def test_burst_is_served_within_the_thread_bound():
    lock = threading.Lock()
    active, peak = [0], [0]
    release = threading.Event()

    def app(environ, start_response):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            if active[0] == http._BoundedWSGIServer.max_threads:
                release.set()       # the bound is reached: let all go on
        release.wait(10)
        with lock:
            active[0] -= 1
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'ok']

    port = cloud.free_port()
    server = http.serve(app, port, bounded=True)
    answers = []

    def get():
        with urllib.request.urlopen('http://127.0.0.1:%d/' % port,
                                    timeout=30) as r:
            answers.append(r.read())
    try:
        clients = [threading.Thread(target=get) for _ in range(25)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(60)
    finally:
        server.shutdown()
        server.server_close()
    assert answers == [b'ok'] * 25
    assert peak[0] == http._BoundedWSGIServer.max_threads
