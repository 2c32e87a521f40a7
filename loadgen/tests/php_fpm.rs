//! ringfast-load's FastCGI client against php-fpm, a FastCGI server we did not write: over TCP
//! and over a Unix socket, keep-alive and a connection per request, request bodies.

mod support;

use support::{load, Addr, PhpFpm, TempDir};

fn php(dir: &TempDir, addr: Addr) -> PhpFpm {
    dir.write("www/hello.php", "<?php echo \"hello from php\\n\";\n");
    dir.write(
        "www/echo.php",
        "<?php header('Content-Type: application/octet-stream'); echo file_get_contents('php://input');\n",
    );
    dir.write(
        "www/teapot.php",
        "<?php http_response_code(418); echo \"short and stout\";\n",
    );
    PhpFpm::start(dir, addr)
}

fn script(dir: &TempDir, name: &str) -> String {
    format!("SCRIPT_FILENAME={}", dir.join("www").join(name).display())
}

#[test]
fn hello_over_tcp_and_unix_with_and_without_keepalive() {
    for unix in [false, true] {
        let dir = TempDir::new("php");
        let addr = if unix {
            Addr::Unix(dir.join("php.sock"))
        } else {
            Addr::loopback()
        };
        let fpm = php(&dir, addr);
        let target = fpm.addr.target("fcgi", "/hello.php");
        let param = script(&dir, "hello.php");
        for keepalive in [true, false] {
            let mut args = vec!["-n", "200", "--warmup", "0.1", "-c", "2", "-t", "2"];
            if !keepalive {
                args.push("--no-keepalive");
            }
            args.extend([
                "--param",
                &param,
                "--expect-body",
                "hello from php\n",
                &target,
            ]);
            let run = load(&args);
            run.assert_clean(200);
            assert_eq!(run.json["transport"], if unix { "unix" } else { "tcp" });
        }
    }
}

#[test]
fn request_bodies_and_statuses() {
    let dir = TempDir::new("php-body");
    let fpm = php(&dir, Addr::loopback());
    let body: String = "abcdefghijklmnopqrstuvwxyz0123456789"
        .chars()
        .cycle()
        .take(70_000)
        .collect();
    let echo = fpm.addr.target("fcgi", "/echo.php");
    let param = script(&dir, "echo.php");
    load(&[
        "-n",
        "50",
        "--warmup",
        "0",
        "-c",
        "2",
        "-m",
        "POST",
        "--body-size",
        "70000",
        "--param",
        &param,
        "--expect-body",
        &body,
        &echo,
    ])
    .assert_clean(50);

    let teapot = fpm.addr.target("fcgi", "/teapot.php");
    let param = script(&dir, "teapot.php");
    let run = load(&[
        "-n", "50", "--warmup", "0", "-c", "2", "--param", &param, &teapot,
    ]);
    assert_eq!(run.errors("status"), 50, "{}", run.json);
    load(&[
        "-n",
        "50",
        "--warmup",
        "0",
        "-c",
        "2",
        "--param",
        &param,
        "--expect-status",
        "418",
        "--expect-body",
        "short and stout",
        &teapot,
    ])
    .assert_clean(50);
}
