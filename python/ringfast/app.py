"""The application ``runfcgi`` serves (``--wsgi ringfast.app:application``).

:mod:`ringfast.runfcgi` sets :data:`TARGET` before the server starts; each process that serves
then looks up ``application`` here, which imports the target at that moment (so a reload or a
recycled process imports the code afresh) and, with ``debug=true``, wraps it so that an
exception shows its traceback in the response, as flup's ``debug`` did.
"""

import importlib
import sys
import traceback

#: "module:callable", or "django" for the project of DJANGO_SETTINGS_MODULE.
TARGET = None
#: runfcgi's debug=true.
DEBUG = False


def _load(target):
    if target == "django":
        from django.conf import settings
        from django.core.servers.basehttp import get_internal_wsgi_application

        # manage.py ran Django's checks in the process this one was forked from, before any
        # request: settings then cached STATIC_URL and MEDIA_URL without the URL prefix
        # (SCRIPT_NAME) of the requests to come. Let the first request here set them.
        for name in ("STATIC_URL", "MEDIA_URL"):
            settings.__dict__.pop(name, None)
        return get_internal_wsgi_application()
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in (attr or "application").split("."):
        obj = getattr(obj, part)
    return obj


def _with_tracebacks(app):
    def debug_app(environ, start_response):
        try:
            return app(environ, start_response)
        except Exception:  # noqa: BLE001 - shown to the client, as flup's debug mode did
            text = traceback.format_exc()
            environ["wsgi.errors"].write(text)
            start_response(
                "500 Internal Server Error",
                [("Content-Type", "text/plain; charset=utf-8")],
                sys.exc_info(),
            )
            return [text.encode("utf-8", "replace")]

    return debug_app


def __getattr__(name):
    if name != "application":
        raise AttributeError(name)
    if TARGET is None:
        raise RuntimeError("ringfast.app: no TARGET (it is set by runfcgi)")
    app = _load(TARGET)
    return _with_tracebacks(app) if DEBUG else app
