//! A Flask app (engine/tests/fixtures/flaskapp.py) hosted by `ringfast --wsgi` behind lighttpd
//! mounted at `/app`: pages, `url_for` links under the prefix, a 1 MiB echo, a streamed body.

#![cfg(feature = "wsgi")]

mod support;
mod wsgi_support;

use support::*;
use wsgi_support::*;

#[test]
fn flask_behind_lighttpd_under_a_prefix() {
    let stack = wsgi_stack(
        "wsgi-flask",
        Proto::FastCgi,
        "flaskapp:app",
        &fixtures(),
        &["--threads", "2"],
        |dir, backend| Lighttpd::new(backend).start(dir),
    );
    let r = stack.curl("/app/").run();
    assert_eq!((r.status, r.text().as_str()), (200, "Hello from Flask"));
    let r = stack.curl("/app/links").run();
    assert_eq!(r.text(), "/app/ /app/echo", "url_for carries the prefix");
    let body = random_bytes(MIB, 42);
    let r = stack
        .curl("/app/echo")
        .header("Content-Type: application/x-test")
        .post(&body)
        .run();
    assert_eq!(r.status, 200);
    assert!(r.body == body, "echo differs");
    assert_eq!(r.header("Content-Type"), Some("application/x-test"));
    let r = stack.curl("/app/stream?n=1000").run();
    let want: String = (0..1000).map(|i| format!("chunk {i}\n")).collect();
    assert_eq!(r.text(), want);
    let r = stack.curl("/app/nope").run();
    assert_eq!(r.status, 404);
}
