"""End-to-end tests of the installed `ringfast` package (issue 15), run by scripts/test.sh with the
python of a fresh virtualenv that pip-installed the wheel and Django:

    .venv-wheel/bin/python -m unittest discover -s python/tests -v

A project made with `django-admin startproject` plus a small app is served with each of the old
Django FastCGI guide's command lines, unchanged, behind a real nginx: a template page whose
{% url %} links carry the prefix, a CSRF form, the admin login page with its CSS served by nginx,
`kill $(cat django.pid)`, the guide's restart script; then `ringfast runfcgi ... wsgi=` without
Django and the `ringfast` command with prefork, recycling and reload.
"""

import http.cookiejar
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

BIN = os.path.dirname(sys.executable)
NGINX = os.environ.get("RINGFAST_NGINX", "/usr/sbin/nginx")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def wait_gone(pid, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} still running")


def running(needle):
    """The pids whose command line contains `needle`."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if needle.encode() in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


class Client:
    """urllib with cookies; answers (status, headers, text)."""

    def __init__(self):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, url, data=None, headers=None):
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(url, data=body, headers=headers or {})
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status, r.headers, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode("utf-8", "replace")

    def cookie(self, name):
        return next((c.value for c in self.jar if c.name == name), None)


def wait_ok(url, timeout=30.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            status, _, text = Client().get(url)
            if status == 200:
                return text
            last = status
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered 200 (last: {last})")


class Site(unittest.TestCase):
    """The project, nginx in front, and the guide's command lines."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ringfast-wheel-")
        cls.proj = os.path.join(cls.tmp, "myproject")
        os.mkdir(cls.proj)
        cls.env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
        cls.env.pop("DJANGO_SETTINGS_MODULE", None)
        subprocess.run([os.path.join(BIN, "django-admin"), "startproject", "mysite", cls.proj],
                       check=True, env=cls.env)
        cls._make_app()
        subprocess.run([os.path.join(BIN, "python"), "manage.py", "collectstatic", "--noinput",
                        "-v0"], cwd=cls.proj, check=True, env=cls.env)
        cls.sock = os.path.join(cls.tmp, "mysite.sock")
        cls.fcgi_port, cls.scgi_port = free_port(), free_port()
        cls.port = {name: free_port() for name in ("tcp", "unix", "scgi", "prefix")}
        cls._start_nginx()

    @classmethod
    def _make_app(cls):
        p = cls.proj
        # manage.py runs with this virtualenv's python even where PATH is emptied (the guide's
        # restart script runs it under `env -`).
        with open(os.path.join(p, "manage.py")) as f:
            lines = f.read().split("\n", 1)
        with open(os.path.join(p, "manage.py"), "w") as f:
            f.write(f"#!{os.path.join(BIN, 'python')}\n" + lines[1])
        settings = os.path.join(p, "mysite", "settings.py")
        with open(settings) as f:
            s = f.read()
        s = s.replace("INSTALLED_APPS = [", 'INSTALLED_APPS = [\n    "ringfast.django",\n    "polls",', 1)
        s = s.replace("ALLOWED_HOSTS = []", 'ALLOWED_HOSTS = ["*"]')
        s += textwrap.dedent("""
            STATIC_ROOT = BASE_DIR / "static"
            SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
            """)
        with open(settings, "w") as f:
            f.write(s)
        with open(os.path.join(p, "mysite", "urls.py"), "w") as f:
            f.write(textwrap.dedent("""
                from django.contrib import admin
                from django.urls import include, path

                urlpatterns = [path("admin/", admin.site.urls), path("", include("polls.urls"))]
                """))
        app = os.path.join(p, "polls")
        os.makedirs(os.path.join(app, "templates", "polls"))
        open(os.path.join(app, "__init__.py"), "w").close()
        files = {
            "urls.py": """
                from django.urls import path
                from . import views

                app_name = "polls"
                urlpatterns = [path("", views.index, name="index"),
                               path("vote/", views.vote, name="vote")]
                """,
            "views.py": """
                import os
                from django.http import HttpResponse
                from django.shortcuts import render

                def index(request):
                    return render(request, "polls/index.html", {"pid": os.getpid()})

                def vote(request):
                    if request.method == "POST":
                        return HttpResponse("voted " + request.POST.get("choice", ""),
                                            content_type="text/plain")
                    return render(request, "polls/vote.html")
                """,
            "templates/polls/index.html": """
                <p>pid {{ pid }}</p>
                <a id="vote" href="{% url 'polls:vote' %}">vote</a>
                """,
            "templates/polls/vote.html": """
                <form method="post" action="{% url 'polls:vote' %}">{% csrf_token %}
                <input name="choice" value="yes"></form>
                """,
        }
        for name, text in files.items():
            with open(os.path.join(app, name), "w") as f:
                f.write(textwrap.dedent(text).lstrip())

    @classmethod
    def _start_nginx(cls):
        d = cls.tmp
        static = os.path.join(cls.proj, "static")
        user = "user root root;" if os.getuid() == 0 else ""
        conf = textwrap.dedent(f"""
            {user}
            daemon off;
            worker_processes 1;
            pid {d}/nginx.pid;
            error_log {d}/nginx-error.log info;
            events {{ worker_connections 256; }}
            http {{
                access_log off;
                client_body_temp_path {d}/nginx-body;
                fastcgi_temp_path {d}/nginx-fastcgi;
                scgi_temp_path {d}/nginx-scgi;
                proxy_temp_path {d}/nginx-proxy;
                uwsgi_temp_path {d}/nginx-uwsgi;
                types {{ text/css css; application/javascript js; }}
                server {{
                    listen 127.0.0.1:{cls.port['tcp']};
                    location /static/ {{ alias {static}/; }}
                    location / {{ include /etc/nginx/fastcgi_params;
                                 fastcgi_pass 127.0.0.1:{cls.fcgi_port}; }}
                }}
                server {{
                    listen 127.0.0.1:{cls.port['unix']};
                    location /static/ {{ alias {static}/; }}
                    location / {{ include /etc/nginx/fastcgi_params;
                                 fastcgi_pass unix:{cls.sock}; }}
                }}
                server {{
                    listen 127.0.0.1:{cls.port['scgi']};
                    location / {{ include /etc/nginx/scgi_params;
                                 scgi_pass 127.0.0.1:{cls.scgi_port}; }}
                }}
                server {{
                    listen 127.0.0.1:{cls.port['prefix']};
                    location /app/static/ {{ alias {static}/; }}
                    location /app/ {{
                        fastcgi_split_path_info ^(/app)(/.*)$;
                        include /etc/nginx/fastcgi_params;
                        fastcgi_param PATH_INFO $fastcgi_path_info;
                        fastcgi_pass unix:{cls.sock};
                    }}
                }}
            }}
            """)
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        cls.nginx = subprocess.Popen([NGINX, "-p", d, "-c", path],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(cls.port["tcp"])

    @classmethod
    def tearDownClass(cls):
        cls.nginx.terminate()
        cls.nginx.wait(timeout=10)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def url(self, server, path="/"):
        return f"http://127.0.0.1:{self.port[server]}{path}"

    def manage(self, *args, **kw):
        return subprocess.run(["./manage.py", "runfcgi", *args], cwd=self.proj, env=self.env,
                              capture_output=True, text=True, timeout=60, **kw)

    def check_site(self, server, prefix=""):
        """The page and its {% url %} link, the CSRF form, the admin's CSS from nginx."""
        page = wait_ok(self.url(server, prefix + "/"))
        self.assertIn(f'href="{prefix}/vote/"', page)
        self.assertNotIn("mysite.fcgi", page)
        c = Client()
        status, _, form = c.get(self.url(server, prefix + "/vote/"))
        self.assertEqual(status, 200)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
        status, _, text = c.get(self.url(server, prefix + "/vote/"),
                                data={"csrfmiddlewaretoken": token, "choice": "yes"})
        self.assertEqual((status, text), (200, "voted yes"))
        status, _, _ = Client().get(self.url(server, prefix + "/vote/"), data={"choice": "no"})
        self.assertEqual(status, 403)
        status, _, login = c.get(self.url(server, prefix + "/admin/login/"))
        self.assertEqual(status, 200)
        css = re.search(r'href="([^"]*/admin/css/base\.css)"', login).group(1)
        self.assertTrue(css.startswith(prefix + "/static/"), css)
        status, headers, _ = c.get(self.url(server, css))
        self.assertEqual(status, 200)
        self.assertIn("text/css", headers["Content-Type"])
        return int(re.search(r"pid (\d+)", page).group(1))

    def read_pid(self, pidfile):
        """The pid in `pidfile`; that process is stopped after the test whatever happens."""
        with open(pidfile) as f:
            pid = int(f.read())
        self.addCleanup(self.kill_quietly, pid)
        return pid

    @staticmethod
    def kill_quietly(pid):
        try:
            os.kill(pid, signal.SIGTERM)
            wait_gone(pid)
        except (ProcessLookupError, AssertionError):
            pass

    def stop_pidfile(self, pidfile):
        pid = self.read_pid(pidfile)
        subprocess.run(f"kill `cat {pidfile}`", shell=True, check=True)
        wait_gone(pid)
        self.assertFalse(os.path.exists(pidfile), "the pidfile is removed on exit")

    # --- the guide's command lines --------------------------------------------------------------

    def test_threaded_tcp_daemon(self):
        r = self.manage("method=threaded", "host=127.0.0.1", f"port={self.fcgi_port}")
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = int(re.search(r"background as pid (\d+)", r.stdout).group(1))
        self.addCleanup(self.kill_quietly, pid)
        self.assertEqual(self.check_site("tcp"), pid, "threaded: one process serves")
        self.kill_quietly(pid)

    def test_prefork_unix_pidfile_and_prefix(self):
        pidfile = os.path.join(self.proj, "django.pid")
        r = self.manage("method=prefork", f"socket={self.sock}", "pidfile=django.pid")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(pidfile))
        supervisor = self.read_pid(pidfile)
        pids = {self.check_site("unix") for _ in range(4)}
        self.assertNotIn(supervisor, pids, "a forked worker process serves")
        self.stop_pidfile(pidfile)
        self.assertFalse(os.path.exists(self.sock))

    def test_foreground_maxrequests_1(self):
        p = subprocess.Popen(["./manage.py", "runfcgi", "daemonize=false", f"socket={self.sock}",
                              "maxrequests=1"], cwd=self.proj, env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            seen = [int(re.search(r"pid (\d+)", wait_ok(self.url("unix"))).group(1))
                    for _ in range(7)]
            # Five processes, each replaced after (about: its workers share the budget) one
            # request: more processes than the five of the pool served.
            self.assertGreater(len(set(seen)), 5, seen)
        finally:
            p.send_signal(signal.SIGINT)
            out = p.communicate(timeout=30)[0].decode()
        self.assertEqual(p.returncode, 0, out)

    def test_scgi(self):
        p = subprocess.Popen(["./manage.py", "runfcgi", "protocol=scgi", "host=127.0.0.1",
                              f"port={self.scgi_port}", "daemonize=false"], cwd=self.proj,
                             env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            page = wait_ok(self.url("scgi"))
            self.assertIn('href="/vote/"', page)
        finally:
            p.terminate()
            p.wait(timeout=30)

    def test_restart_script(self):
        pidfile = os.path.join(self.proj, "mysite.pid")
        script = os.path.join(self.tmp, "restart.sh")
        with open(script, "w") as f:
            f.write(textwrap.dedent(f"""\
                #!/bin/bash

                # Replace these three settings.
                PROJDIR="{self.proj}"
                PIDFILE="$PROJDIR/mysite.pid"
                SOCKET="{self.sock}"

                cd $PROJDIR
                if [ -f $PIDFILE ]; then
                    kill `cat -- $PIDFILE`
                    rm -f -- $PIDFILE
                fi

                exec /usr/bin/env - \\
                  PYTHONPATH="../python:.." \\
                  ./manage.py runfcgi socket=$SOCKET pidfile=$PIDFILE
                """))
        os.chmod(script, 0o755)
        r = subprocess.run([script], timeout=60, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        first = self.read_pid(pidfile)
        wait_ok(self.url("unix"))
        r = subprocess.run([script], timeout=60, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        second = self.read_pid(pidfile)
        self.assertNotEqual(first, second)
        wait_gone(first)
        # The new instance, under a URL prefix from nginx's fastcgi_split_path_info (only
        # through it: Django keeps the first prefix it sees for STATIC_URL).
        self.check_site("prefix", "/app")
        self.stop_pidfile(pidfile)

    def test_help_and_errors(self):
        r = self.manage("help")
        self.assertEqual(r.returncode, 0)
        for key in ("protocol", "host", "port", "socket", "method", "maxrequests", "maxspare",
                    "minspare", "maxchildren", "daemonize", "pidfile", "workdir", "umask",
                    "outlog", "errlog", "debug"):
            self.assertRegex(r.stdout, rf"(?m)^  {key} ")
        self.assertIn("[default: prefork]", r.stdout)
        for args, named in ((["colour=blue"], "'colour'"), (["method=forked"], "method=forked"),
                            (["port=80x", "host=h"], "port=80x"),
                            (["daemonize=maybe", "port=1", "host=h"], "daemonize=maybe"),
                            (["host=127.0.0.1"], "host")):
            r = self.manage(*args)
            self.assertNotEqual(r.returncode, 0, args)
            self.assertIn(named, r.stderr, args)

    # --- spawned by the web server -----------------------------------------------------------

    def test_spawned_by_lighttpd_and_touch(self):
        lighttpd = os.environ.get("RINGFAST_LIGHTTPD", "/usr/sbin/lighttpd")
        d = os.path.join(self.tmp, "spawned")
        docroot = os.path.join(d, "public_html")
        os.makedirs(docroot)
        script = os.path.join(docroot, "mysite.fcgi")
        with open(script, "w") as f:
            f.write(textwrap.dedent(f"""\
                #!{os.path.join(BIN, "python")}
                import sys, os

                # Add a custom Python path.
                sys.path.insert(0, "{self.proj}")

                # Set the DJANGO_SETTINGS_MODULE environment variable.
                os.environ['DJANGO_SETTINGS_MODULE'] = "mysite.settings"

                from ringfast import runfastcgi
                runfastcgi(method="threaded", daemonize="false")
                """))
        os.chmod(script, 0o755)
        port = free_port()
        conf = os.path.join(d, "lighttpd.conf")
        with open(conf, "w") as f:
            f.write(textwrap.dedent(f"""\
                server.document-root = "{docroot}"
                server.port = {port}
                server.bind = "127.0.0.1"
                server.pid-file = "{d}/lighttpd.pid"
                server.errorlog = "{d}/lighttpd-error.log"
                server.modules += ( "mod_rewrite", "mod_alias", "mod_fastcgi" )
                fastcgi.server = (
                    "/mysite.fcgi" => (
                        "main" => (
                            "socket" => "{d}/mysite.sock",
                            "bin-path" => "{script}",
                            "check-local" => "disable",
                            "max-procs" => 1,
                        )
                    ),
                )
                alias.url = ( "/static" => "{self.proj}/static/" )
                url.rewrite-once = (
                    "^(/static.*)$" => "$1",
                    "^(/.*)$" => "/mysite.fcgi$1",
                )
                """))
        p = subprocess.Popen([lighttpd, "-D", "-f", conf], env=self.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            page = wait_ok(base + "/")
            self.assertIn('href="/vote/"', page, "no mysite.fcgi in the links")
            first = int(re.search(r"pid (\d+)", page).group(1))
            status, _, _ = Client().get(base + "/static/admin/css/base.css")
            self.assertEqual(status, 200)
            time.sleep(1.1)
            os.utime(script)
            deadline = time.monotonic() + 30
            pid = first
            while pid == first and time.monotonic() < deadline:
                time.sleep(0.2)
                pid = int(re.search(r"pid (\d+)", wait_ok(base + "/")).group(1))
            self.assertNotEqual(pid, first, "touch mysite.fcgi: a new process serves")
        finally:
            p.terminate()
            p.wait(timeout=30)
            # lighttpd sent SIGTERM to the script it spawned, which stops gracefully.
            for pid in running(script):
                wait_gone(pid)

    # --- without Django -------------------------------------------------------------------------

    def test_ringfast_runfcgi_plain_wsgi(self):
        app = os.path.join(self.tmp, "plainapp.py")
        with open(app, "w") as f:
            f.write(textwrap.dedent("""
                import os
                def application(environ, start_response):
                    if environ["PATH_INFO"] == "/boom":
                        raise RuntimeError("kaboom")
                    start_response("200 OK", [("Content-Type", "text/plain")])
                    return [b"plain ", str(os.getpid()).encode()]
                """))
        p = subprocess.Popen([os.path.join(BIN, "ringfast"), "runfcgi", "method=threaded",
                              "host=127.0.0.1", f"port={self.fcgi_port}", "daemonize=false",
                              "debug=true", "wsgi=plainapp:application", "--metrics", "off"],
                             cwd=self.tmp, env=self.env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        try:
            text = wait_ok(self.url("tcp"))
            self.assertEqual(text, f"plain {p.pid}")
            status, _, body = Client().get(self.url("tcp", "/boom"))
            self.assertEqual(status, 500)
            self.assertIn("RuntimeError: kaboom", body, "debug=true shows the traceback")
        finally:
            p.terminate()
            p.wait(timeout=30)
        self.assertEqual(p.returncode, 0)

    def test_ringfast_command_prefork_recycle_reload(self):
        touch = os.path.join(self.tmp, "reload.txt")
        open(touch, "w").close()
        env = dict(self.env, DJANGO_SETTINGS_MODULE="mysite.settings")
        p = subprocess.Popen([os.path.join(BIN, "ringfast"), "--wsgi", "mysite.wsgi:application",
                              "--chdir", self.proj, "--fastcgi", f"127.0.0.1:{self.fcgi_port}",
                              "--processes", "2", "--max-requests", "3", "--touch-reload", touch,
                              "--metrics", "off", "--workers", "1"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            def pids(n):
                return {int(re.search(r"pid (\d+)", wait_ok(self.url("tcp"))).group(1))
                        for _ in range(n)}

            first = pids(4)
            self.assertNotIn(p.pid, first)
            later = pids(12)
            self.assertGreater(len(later - first), 0, "recycled after --max-requests")
            time.sleep(1.1)
            os.utime(touch)
            # The old processes serve until every new one is ready, then finish and exit:
            # wait for them to be gone (sampling answers could miss one still serving).
            def alive(pid):
                try:
                    os.kill(pid, 0)
                    return True
                except ProcessLookupError:
                    return False

            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(alive(x) for x in later):
                time.sleep(0.2)
            self.assertFalse(pids(4) & later, "touch: new worker processes")
        finally:
            p.terminate()
            p.wait(timeout=30)
        self.assertEqual(p.returncode, 0)


if __name__ == "__main__":
    unittest.main()
