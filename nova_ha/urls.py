"""URL helpers with no heavy imports (the simulated cloud imports this
before nova, which must be imported first of all)."""

import urllib.parse


def redact(url):
    """`url` with its password, if any, shown as ***."""
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(':' + parts.password + '@', ':***@')
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url
