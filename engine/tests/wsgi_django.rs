//! The Django test site (engine/tests/fixtures/djsite) hosted by `ringfast --wsgi` behind real
//! front ends: nginx (FastCGI and SCGI), lighttpd (FastCGI at `/` and under `/app`), Apache
//! (mod_proxy_fcgi and mod_proxy_ajp). Each checks the template page and that its `{% url %}`
//! and `{% static %}` links carry the right prefix, the CSRF-protected form, a 20 MiB upload
//! (size and SHA-256 computed by Django), a streaming response, and a view that raises.

#![cfg(feature = "wsgi")]

mod support;
mod wsgi_support;

use support::*;
use wsgi_support::*;

const APP: &str = "djsite.wsgi:application";

fn djsite() -> std::path::PathBuf {
    fixtures().join("djsite")
}

fn django_stack(
    label: &str,
    proto: Proto,
    extra: &[&str],
    front: impl FnOnce(&TempDir, Backend) -> FrontEnd,
) -> Stack {
    wsgi_stack(label, proto, APP, &djsite(), extra, front)
}

/// The template page at `<prefix>/`: rendered, with links under `prefix`.
fn check_page(stack: &Stack, prefix: &str) {
    let kind = stack.front.kind;
    let r = stack.curl(&format!("{prefix}/?who=ringfast")).run();
    assert_eq!(r.status, 200, "{kind} page: {}", r.text());
    let html = r.text();
    assert!(html.contains("Hello, ringfast!"), "{kind} page: {html}");
    assert!(
        html.contains(&format!("<p id=\"path\">{prefix}/</p>")),
        "{kind} request.path: {html}"
    );
    assert_eq!(
        html_href(&html, "form").as_deref(),
        Some(format!("{prefix}/form/").as_str()),
        "{kind} {{% url 'form' %}}: {html}"
    );
    assert_eq!(
        html_href(&html, "admin").as_deref(),
        Some(format!("{prefix}/admin/login/").as_str()),
        "{kind} {{% url 'admin:login' %}}"
    );
    assert!(
        html.contains(&format!("href=\"{prefix}/static/admin/css/base.css\"")),
        "{kind} {{% static %}} link: {html}"
    );
}

/// The form: GET gives a CSRF token and cookie; POST with them is accepted, without is 403.
fn check_form(stack: &Stack, prefix: &str) {
    let kind = stack.front.kind;
    let r = stack.curl(&format!("{prefix}/form/")).run();
    assert_eq!(r.status, 200, "{kind} GET form");
    let token = html_input_value(&r.text(), "csrfmiddlewaretoken")
        .unwrap_or_else(|| panic!("{kind}: no CSRF token in {}", r.text()));
    let cookie = cookies(&r);
    assert!(cookie.contains("csrftoken="), "{kind} cookies {cookie:?}");
    let r = stack
        .curl(&format!("{prefix}/form/"))
        .header(&format!("Cookie: {cookie}"))
        .header("Content-Type: application/x-www-form-urlencoded")
        .post(format!("csrfmiddlewaretoken={token}&name=Ada%20Lovelace").as_bytes())
        .run();
    assert_eq!(r.status, 200, "{kind} POST form: {}", r.text());
    assert_eq!(r.text(), "thanks Ada Lovelace");
    let r = stack
        .curl(&format!("{prefix}/form/"))
        .header("Content-Type: application/x-www-form-urlencoded")
        .post(b"name=Mallory")
        .run();
    assert_eq!(r.status, 403, "{kind} POST without CSRF token");
}

/// A 20 MiB multipart upload: Django's size and SHA-256 match what was sent.
fn check_upload(stack: &Stack, prefix: &str) {
    let kind = stack.front.kind;
    let data = random_bytes(20 * MIB, 0xd1a9);
    let want = sha256_hex(&stack.dir, &data);
    let (ctype, body) = multipart_file("file", "big.bin", &data);
    let r = stack
        .curl(&format!("{prefix}/upload/"))
        .header(&format!("Content-Type: {ctype}"))
        .post(&body)
        .run();
    assert_eq!(r.status, 200, "{kind} upload: {}", r.text());
    assert_eq!(
        r.text(),
        format!("big.bin {} {want}", 20 * MIB),
        "{kind} upload bytes"
    );
}

/// StreamingHttpResponse: every line, in order.
fn check_stream(stack: &Stack, prefix: &str) {
    let r = stack.curl(&format!("{prefix}/stream/?n=5000")).run();
    assert_eq!(r.status, 200);
    let want: String = (0..5000).map(|i| format!("line {i}\n")).collect();
    assert!(r.text() == want, "{} stream body differs", stack.front.kind);
}

/// A view that raises: 500 for the client, the traceback in ringfast's log.
fn check_boom(stack: &Stack, prefix: &str) {
    let r = stack.curl(&format!("{prefix}/boom/")).run();
    assert_eq!(r.status, 500, "{} boom", stack.front.kind);
    assert!(
        wait_until(std::time::Duration::from_secs(5), || stack
            .engine
            .proc
            .log()
            .contains("RuntimeError: boom from the ringfast test view")),
        "the view's traceback is not in the log:\n{}",
        stack.engine.proc.log()
    );
}

/// How Django splits the path (request.META['SCRIPT_NAME'], request.path_info).
fn check_whereami(stack: &Stack, prefix: &str) {
    let r = stack.curl(&format!("{prefix}/whereami/")).run();
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("whereami JSON: {e}: {}", r.text()));
    assert_eq!(v["script_name"], prefix, "{}: {v}", stack.front.kind);
    assert_eq!(v["path_info"], "/whereami/", "{}: {v}", stack.front.kind);
    assert_eq!(v["path"], format!("{prefix}/whereami/"));
}

fn check_site(stack: &Stack, prefix: &str) {
    check_page(stack, prefix);
    check_whereami(stack, prefix);
    check_form(stack, prefix);
    check_upload(stack, prefix);
    check_stream(stack, prefix);
    check_boom(stack, prefix);
}

#[test]
fn nginx_fastcgi_with_admin_static_files() {
    let admin_static = django_admin_static();
    let stack = django_stack(
        "wsgi-nginx-fcgi",
        Proto::FastCgi,
        &["--script-name", "/app"],
        |dir, backend| {
            Nginx::new(backend)
                .keepalive(8)
                .alias("/app/static/admin/", &admin_static)
                .start(dir)
        },
    );
    check_site(&stack, "/app");
    // The admin login page comes from Django; its static files from nginx.
    let r = stack.curl("/app/admin/login/").run();
    assert_eq!(r.status, 200, "admin login: {}", r.text());
    let html = r.text();
    assert!(html.contains("csrfmiddlewaretoken"), "{html}");
    assert!(
        html.contains("/app/static/admin/css/login.css"),
        "admin CSS link: {html}"
    );
    let css = stack.curl("/app/static/admin/css/login.css").run();
    assert_eq!(css.status, 200);
    let on_disk = std::fs::read(admin_static.join("css/login.css")).unwrap();
    assert_eq!(css.body, on_disk, "login.css served by nginx");
    let log = stack.engine.proc.log();
    assert!(
        !log.contains("login.css"),
        "static files must not reach ringfast"
    );
}

#[test]
fn nginx_scgi() {
    let stack = django_stack(
        "wsgi-nginx-scgi",
        Proto::Scgi,
        &["--script-name", "/app"],
        |dir, backend| Nginx::new(backend).start(dir),
    );
    check_site(&stack, "/app");
}

#[test]
fn lighttpd_fastcgi_at_the_root() {
    // lighttpd mounted at "/" puts the first path segment in SCRIPT_NAME (`/whereami` for
    // `/whereami/`), which looks exactly like a mount at `/whereami`; `--script-name /` (the
    // seed's `FORCE_SCRIPT_NAME = ''`) says the site is at the root.
    let stack = django_stack(
        "wsgi-lighttpd-root",
        Proto::FastCgi,
        &["--script-name", "/"],
        |dir, backend| Lighttpd::new(backend).mount("/").start(dir),
    );
    check_site(&stack, "");
}

#[test]
fn lighttpd_fastcgi_under_a_prefix() {
    // Mounted at /app: lighttpd's SCRIPT_NAME=/app is the prefix, no option needed.
    let stack = django_stack(
        "wsgi-lighttpd-prefix",
        Proto::FastCgi,
        &[],
        |dir, backend| Lighttpd::new(backend).start(dir),
    );
    check_site(&stack, "/app");
}

#[test]
fn apache_proxy_fcgi() {
    let stack = django_stack(
        "wsgi-apache-fcgi",
        Proto::FastCgi,
        &["--script-name", "/app"],
        |dir, backend| Apache::new(backend).enablereuse().start(dir),
    );
    check_site(&stack, "/app");
}

#[test]
fn apache_proxy_ajp() {
    let stack = django_stack(
        "wsgi-apache-ajp",
        Proto::Ajp,
        &["--script-name", "/app"],
        |dir, backend| Apache::new(backend).start(dir),
    );
    check_site(&stack, "/app");
}

#[test]
fn lighttpd_rewrite_through_mysite_fcgi() {
    // The seed guide's lighttpd set-up: every URL rewritten to /mysite.fcgi$1. lighttpd sends
    // SCRIPT_NAME=/mysite.fcgi; the original REQUEST_URI shows the site is at the root, so the
    // links carry no `mysite.fcgi`.
    let stack = django_stack(
        "wsgi-lighttpd-rewrite",
        Proto::FastCgi,
        &[],
        |dir, backend| {
            Lighttpd::new(backend)
                .mount("/mysite.fcgi")
                .line(r#"server.modules += ( "mod_rewrite" )"#)
                .line(r#"url.rewrite-once = ( "^(/.*)$" => "/mysite.fcgi$1" )"#)
                .start(dir)
        },
    );
    check_page(&stack, "");
    check_whereami(&stack, "");
    check_form(&stack, "");
}

#[test]
fn apache_mod_rewrite_through_mysite_fcgi() {
    // The seed guide's Apache set-up (mod_rewrite sending /site/... to /mysite.fcgi/...) with
    // today's modules: mod_proxy_fcgi, told with ProxyFCGISetEnvIf to send what mod_fastcgi
    // sent (SCRIPT_NAME=/mysite.fcgi, PATH_INFO=the rest). mod_rewrite sets SCRIPT_URL to the
    // original path, from which ringfast recovers SCRIPT_NAME=/site.
    let stack = django_stack(
        "wsgi-apache-rewrite",
        Proto::FastCgi,
        &[],
        |dir, backend| {
            let addr = backend.addr.to_arg();
            let m = Apache::MODULES;
            let mut conf = Apache::new(backend);
            conf.extra = vec![
                format!("LoadModule rewrite_module {m}/mod_rewrite.so"),
                "RewriteEngine On".to_string(),
                r#"ProxyFCGISetEnvIf "true" SCRIPT_NAME "/mysite.fcgi""#.to_string(),
                r#"ProxyFCGISetEnvIf "reqenv('SCRIPT_URL') =~ m#^/site(/.*)$#" PATH_INFO "$1""#
                    .to_string(),
                format!("RewriteRule \"^/site/(.*)$\" \"fcgi://{addr}/mysite.fcgi/$1\" [P]"),
            ];
            conf.start(dir)
        },
    );
    check_page(&stack, "/site");
    check_whereami(&stack, "/site");
    check_form(&stack, "/site");
    check_upload(&stack, "/site");
}
