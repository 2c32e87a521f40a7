"""Django's old ``runfcgi`` options (``key=value``), translated into ringfast's.

Used by ``./manage.py runfcgi`` (``ringfast.django``), ``ringfast runfcgi`` and
:func:`ringfast.runfastcgi`. Every option the old command had is accepted with its meaning; an
unknown key or a bad value is an error that names it. docs/django.md has the table.
"""

import os
import socket
import sys

# (key, default shown by `help`, what it does). The order is the one `help` prints.
OPTIONS = [
    ("protocol", "fcgi", "fcgi, scgi or ajp (AJP13)"),
    ("host", None, "host name or IP address to listen on (with port)"),
    ("port", None, "TCP port to listen on (with host)"),
    ("socket", None, "Unix socket to listen on (instead of host and port)"),
    ("method", "prefork", "prefork (processes) or threaded (threads in one process)"),
    ("maxrequests", "0", "requests a process serves before it is replaced (0: no limit)"),
    ("maxspare", "5", "prefork: the worker processes kept running (at most maxchildren)"),
    ("minspare", "2", "accepted; the pool is fixed at maxspare processes (prefork)"),
    ("maxchildren", "50", "prefork: most processes; threaded: the Python threads"),
    (
        "daemonize",
        None,
        "true or false: run in the background (default: true when host/port or socket is given)",
    ),
    ("pidfile", None, "write the process id to this file (`kill $(cat FILE)` stops it)"),
    ("workdir", "/", "the directory to change to when daemonizing"),
    ("umask", None, "octal umask (022 when daemonizing); the Unix socket gets 0777 & ~umask"),
    ("outlog", None, "append what the application prints (stdout) to this file"),
    ("errlog", None, "append the server's log and stderr to this file"),
    ("debug", "false", "true: a failing application answers with its traceback"),
]
# Not in Django's runfcgi: the application, for `ringfast runfcgi` without Django.
WSGI_OPTION = ("wsgi", None, "the WSGI application MODULE:CALLABLE (default: Django's, from "
               "DJANGO_SETTINGS_MODULE)")

PROTOCOLS = {"fcgi": "--fastcgi", "scgi": "--scgi", "ajp": "--ajp"}
METHODS = {"prefork": "prefork", "fork": "prefork", "threaded": "threaded", "thread": "threaded"}
TRUE = ("true", "yes", "t", "on", "1")
FALSE = ("false", "no", "f", "off", "0")


class OptionError(ValueError):
    """An unknown key or a bad value; the message names it."""


def help_text(with_wsgi=True):
    """The option list `help` prints, with the defaults."""
    rows = OPTIONS + ([WSGI_OPTION] if with_wsgi else [])
    lines = [
        "runfcgi [options] [ringfast options]: serve the application over FastCGI, SCGI or AJP13",
        "with ringfast. Options are key=value; every ringfast option (`ringfast --help`) may",
        "follow them, from the first argument that starts with --.",
        "",
    ]
    width = max(len(k) for k, _, _ in rows)
    for key, default, what in rows:
        shown = "" if default is None else f" [default: {default}]"
        lines.append(f"  {key.ljust(width)}  {what}{shown}")
    lines += [
        "",
        "Examples:",
        "  runfcgi method=threaded host=127.0.0.1 port=3033",
        "  runfcgi method=prefork socket=/home/user/mysite.sock pidfile=django.pid",
        "  runfcgi daemonize=false socket=/tmp/mysite.sock maxrequests=1",
        "  runfcgi protocol=scgi host=127.0.0.1 port=4000 daemonize=false",
    ]
    return "\n".join(lines) + "\n"


def parse(args, kwargs=None, with_wsgi=True):
    """Splits `args` into the runfcgi options (a dict of the keys given, lower-cased) and the
    ringfast options that follow them. `kwargs` (from runfastcgi) come first, `args` override
    them. Returns (options, passthrough, wants_help)."""
    known = {k for k, _, _ in OPTIONS} | ({"wsgi"} if with_wsgi else set())
    options = {}
    for key, value in (kwargs or {}).items():
        options[str(key).lower()] = value
    passthrough = []
    wants_help = False
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            passthrough = list(args[i + 1 :] if arg == "--" else args[i:])
            break
        if "=" in arg:
            key, value = arg.split("=", 1)
        else:
            key, value = arg, True
        options[key.lower()] = value
    if "help" in options:
        wants_help = True
        del options["help"]
    for key in options:
        if key not in known:
            raise OptionError(
                f"unknown option {key!r} (the options are: {', '.join(sorted(known))}; "
                "`runfcgi help` explains them)"
            )
    return options, passthrough, wants_help


def _text(options, key):
    value = options.get(key)
    if value is None:
        return None
    if value is True or str(value) == "":
        raise OptionError(f"{key}= needs a value, as in {key}={_example(key)}")
    return str(value)


def _example(key):
    return {
        "host": "127.0.0.1",
        "port": "3033",
        "socket": "/tmp/mysite.sock",
        "pidfile": "django.pid",
        "workdir": "/",
        "outlog": "out.log",
        "errlog": "err.log",
        "wsgi": "mysite.wsgi:application",
    }.get(key, "...")


def _bool(options, key, default):
    value = options.get(key)
    if value is None:
        return default
    if value is True or value is False:
        return value
    text = str(value).lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise OptionError(f"{key}={value}: expected true or false")


def _int(options, key, default, low, high=None):
    value = options.get(key, default)
    try:
        n = int(str(value), 10)
    except ValueError:
        raise OptionError(f"{key}={value}: expected a whole number") from None
    if n < low or (high is not None and n > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise OptionError(f"{key}={value}: expected a number {bound}")
    return n


def _fd0_is_listening():
    """Whether descriptor 0 is a listening socket (spawned by a web server)."""
    try:
        s = socket.socket(fileno=os.dup(0))
    except OSError:
        return False
    try:
        return bool(s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    except OSError:
        return False
    finally:
        s.close()


class Plan:
    """What the options ask for: the ringfast arguments and what this process does first."""

    def __init__(self, argv, stdout_file, debug, spawned):
        self.argv = argv
        self.stdout_file = stdout_file
        self.debug = debug
        self.spawned = spawned


def translate(options, passthrough=(), app="ringfast.app:application"):
    """The ringfast command line for these runfcgi options (see docs/django.md for the table)."""
    protocol = _text(options, "protocol") or "fcgi"
    if protocol.lower() not in PROTOCOLS:
        raise OptionError(f"protocol={protocol}: expected fcgi, scgi or ajp")
    flag = PROTOCOLS[protocol.lower()]
    method_given = _text(options, "method") or "prefork"
    method = METHODS.get(method_given.lower())
    if method is None:
        raise OptionError(f"method={method_given}: expected prefork or threaded")

    host, port, sock = (_text(options, k) for k in ("host", "port", "socket"))
    argv = []
    spawned = False
    if host and port and not sock:
        n = _int(options, "port", None, 1, 65535)
        address = f"[{host}]:{n}" if ":" in host else f"{host}:{n}"
        argv += [flag, address]
    elif sock and not host and not port:
        argv += [flag, "unix:" + os.path.abspath(sock)]
    elif not (host or port or sock):
        if not _fd0_is_listening():
            raise OptionError(
                "no address: give host= and port=, or socket= (only a web server that spawns "
                "the application, with a listening socket as descriptor 0, may leave them out)"
            )
        argv += [flag, "fd:0"]
        spawned = True
    else:
        raise OptionError(
            "host, port and socket: give host= and port= together, or socket= alone"
        )

    maxrequests = _int(options, "maxrequests", "0", 0)
    maxspare = _int(options, "maxspare", "5", 1)
    _int(options, "minspare", "2", 0)
    maxchildren = _int(options, "maxchildren", "50", 1)
    if method == "prefork":
        argv += ["--processes", str(min(maxspare, maxchildren)), "--threads", "1"]
    else:
        argv += ["--processes", "1", "--threads", str(min(maxchildren, 1024))]
    if maxrequests:
        argv += ["--max-requests", str(maxrequests)]

    daemonize = _bool(options, "daemonize", not spawned)
    umask = _text(options, "umask")
    if umask is not None:
        try:
            mask = int(umask, 8)
        except ValueError:
            raise OptionError(f"umask={umask}: expected an octal mask such as 022") from None
        if not 0 <= mask <= 0o777:
            raise OptionError(f"umask={umask}: expected an octal mask such as 022")
        argv += ["--umask", f"{mask:04o}", "--socket-mode", f"{0o777 & ~mask:04o}"]
    elif daemonize:
        argv += ["--umask", "0022"]
    if daemonize:
        argv.append("--daemonize")
        workdir = _text(options, "workdir") or "/"
        if not os.path.isdir(workdir):
            raise OptionError(f"workdir={workdir}: no such directory")
        # The application is loaded after the change of directory: keep the directory it was
        # started from on sys.path.
        argv += ["--chdir", os.path.abspath(workdir), "--pythonpath", os.getcwd()]
    elif "workdir" in options:
        _text(options, "workdir")

    pidfile = _text(options, "pidfile")
    if pidfile:
        argv += ["--pidfile", os.path.abspath(pidfile)]
    outlog, errlog = _text(options, "outlog"), _text(options, "errlog")
    stdout_file = None
    if errlog:
        argv += ["--log-file", os.path.abspath(errlog)]
        if outlog and os.path.abspath(outlog) != os.path.abspath(errlog):
            stdout_file = os.path.abspath(outlog)
    elif outlog:
        stdout_file = os.path.abspath(outlog)
    debug = _bool(options, "debug", False)
    argv += ["--wsgi", app]
    argv += list(passthrough)
    return Plan(argv, stdout_file, debug, spawned)


def run(plan, target):
    """Serves `target` (a "module:callable" string, or "django") as `plan` says; returns the
    exit status."""
    from ringfast import app, serve

    app.TARGET = target
    app.DEBUG = plan.debug
    if plan.stdout_file:
        # What the application prints goes there; the server's own log stays on stderr.
        sys.stdout = open(plan.stdout_file, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    return serve(plan.argv)


def default_target():
    """Django's application when DJANGO_SETTINGS_MODULE is set, else None."""
    return "django" if os.environ.get("DJANGO_SETTINGS_MODULE") else None


def main(args):
    """`ringfast runfcgi key=value ...`. Returns the exit status."""
    try:
        options, passthrough, wants_help = parse(args)
        if wants_help:
            sys.stdout.write(help_text())
            return 0
        target = _text(options, "wsgi") or default_target()
        if target is None:
            raise OptionError(
                "no application: give wsgi=MODULE:CALLABLE (or set DJANGO_SETTINGS_MODULE)"
            )
        plan = translate(options, passthrough)
    except OptionError as e:
        sys.stderr.write(f"ringfast runfcgi: {e}\n")
        return 2
    return run(plan, target)


def runfastcgi(argset, kwargs):
    """`ringfast.runfastcgi`: the old function, for a script a web server spawns. A script
    started with a listening socket as descriptor 0 reloads when it is touched."""
    try:
        options, passthrough, wants_help = parse(argset, kwargs)
        if wants_help:
            sys.stdout.write(help_text())
            return False
        target = _text(options, "wsgi") or default_target()
        if target is None:
            raise OptionError(
                "no application: set DJANGO_SETTINGS_MODULE, or pass wsgi='module:callable'"
            )
        plan = translate(options, passthrough)
    except OptionError as e:
        sys.stderr.write(f"runfastcgi: {e}\n")
        return 2
    script = getattr(sys.modules.get("__main__"), "__file__", None)
    if plan.spawned and script and os.path.isfile(script):
        # `touch mysite.fcgi` restarts the application (new worker processes; the web server
        # keeps its connection to the same socket).
        plan.argv += ["--touch-reload", os.path.abspath(script)]
    return run(plan, target)
