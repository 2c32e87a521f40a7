"""ringfast: a thread-per-core FastCGI, SCGI and AJP13 server for WSGI applications.

The engine is a Rust extension module (``ringfast._ringfast``) that runs the application in this
interpreter, with this environment's packages. Three ways in:

- the ``ringfast`` command (``python -m ringfast``), with the options of the ``ringfast`` binary,
  and ``ringfast runfcgi key=value ...``, the options of Django's old ``runfcgi``;
- ``"ringfast.django"`` in ``INSTALLED_APPS``: ``./manage.py runfcgi key=value ...``;
- :func:`runfastcgi` in a script a web server spawns (``mysite.fcgi``).

See docs/django.md and docs/wsgi.md in the repository.
"""

import os
import sys

from ringfast._ringfast import run as _run
from ringfast._ringfast import version as _version

__version__ = _version()
__all__ = ["serve", "runfastcgi", "__version__"]


def serve(args):
    """Runs ringfast with these command-line options (a list of strings, without the program
    name) in this interpreter until the server stops, and returns its exit status.

    The server may fork (``--daemonize``, ``--processes``, ``--max-requests``,
    ``--touch-reload``). A forked process leaves with ``os._exit`` when it is done, so only the
    original process returns here.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or odd stream must not stop the server
            pass
    pid = os.getpid()
    status = _run(["ringfast", *[str(a) for a in args]])
    if os.getpid() != pid:
        # A daemon or a worker process: the parent's atexit handlers and finalisation are not
        # this process's to run.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(status)
    return status


def runfastcgi(argset=(), **kwargs):
    """Django's old ``django.core.servers.fastcgi.runfastcgi``: serves the WSGI application with
    the ``runfcgi`` options given as ``key=value`` strings in ``argset`` or as keyword arguments
    (``runfastcgi(method="threaded", daemonize="false")``). The application is the Django project
    of ``DJANGO_SETTINGS_MODULE`` unless ``wsgi="module:callable"`` names another. Returns the
    exit status (``False`` after ``help``, as the old function did).
    """
    from ringfast import runfcgi

    return runfcgi.runfastcgi(list(argset), kwargs)
