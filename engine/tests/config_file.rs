//! `--config FILE` and `--print-config` on the real binary: the complete example of
//! docs/configuration.md loads and serves (with the command line overriding its paths), the
//! printed configuration is the effective one and loads back, and a bad file stops ringfast
//! before it binds anything, naming the key and the line.

mod metrics_support;
mod support;

use std::process::Command;
use std::time::Duration;

use metrics_support::fcgi_requests;
use support::{read_lossy, wait_until, Addr, Engine, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_ringfast");

/// The ```toml block after "A complete example" in docs/configuration.md.
fn documented_example() -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/configuration.md"
    ))
    .expect("docs/configuration.md");
    let from = doc
        .find("A complete example")
        .expect("the example's heading");
    let rest = &doc[from..];
    let start = rest.find("```toml\n").expect("a ```toml block") + "```toml\n".len();
    let end = rest[start..].find("```").expect("the end of the block");
    rest[start..start + end].to_string()
}

fn ringfast(args: &[&str]) -> std::process::Output {
    // The environment would win over the file (and show in --print-config).
    Command::new(BIN)
        .args(args)
        .env_remove("RINGFAST_IO")
        .env_remove("RINGFAST_AJP_SECRET")
        .output()
        .expect("run ringfast")
}

#[test]
fn the_documented_example_prints_and_serves() {
    let dir = TempDir::new("config-example");
    let file = dir.write("mysite.toml", documented_example());
    let file = file.to_str().unwrap();

    let out = ringfast(&["--config", file, "--print-config", "--workers", "1"]);
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).unwrap();
    for line in [
        "fastcgi = [\"unix:/run/ringfast/mysite.sock\"]\n",
        "processes = 2\n",
        "workers = 1\n",
        "max-requests = 5000\n",
        "max-requests-jitter = 500\n",
        "max-rss = 512\n",
        "max-lifetime = 86400\n",
        "touch-reload = \"/srv/mysite/reload\"\n",
        "socket-mode = \"0660\"\n",
        "io = \"ring\"\n",
        "# user = (not set)\n",
        "scgi = [] # default\n",
        "ring-entries = 1024 # default\n",
    ] {
        assert!(printed.contains(line), "missing {line:?} in\n{printed}");
    }
    // What it prints is a configuration file that loads to the same.
    let again = dir.write("printed.toml", &printed);
    let out = ringfast(&["--config", again.to_str().unwrap(), "--print-config"]);
    assert!(out.status.success(), "{out:?}");
    // (Every value now comes from a file: none is marked `# default` any more.)
    let unmarked = |s: &str| s.replace(" # default", "").replace("workers = 1\n", "");
    assert_eq!(
        unmarked(&String::from_utf8(out.stdout).unwrap()),
        unmarked(&printed)
    );

    // Serve with it; the command line overrides its listener and its paths.
    let tcp = Addr::loopback();
    let log = dir.join("ringfast.log");
    let pidfile = dir.join("ringfast.pid");
    let args: Vec<String> = [
        "--config",
        file,
        "--fastcgi",
        &tcp.to_arg(),
        "--metrics",
        "off",
        "--pidfile",
        pidfile.to_str().unwrap(),
        "--log-file",
        log.to_str().unwrap(),
        "--touch-reload",
        dir.join("reload").to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut engine = Engine::start(&dir, &args, std::slice::from_ref(&tcp));
    let Addr::Tcp(addr) = tcp else { unreachable!() };
    for _ in 0..20 {
        let out = fcgi_requests(addr, &[("/hello", b"")]);
        assert!(
            String::from_utf8_lossy(&out[0]).ends_with("Hello, World!"),
            "{}",
            read_lossy(&log)
        );
    }
    // processes = 2 from the file: a supervisor and two worker processes.
    assert!(
        wait_until(Duration::from_secs(10), || read_lossy(&log)
            .contains("all worker processes ready")),
        "{}",
        read_lossy(&log)
    );
    assert!(
        read_lossy(&log).contains("processes=2"),
        "{}",
        read_lossy(&log)
    );
    assert!(!std::path::Path::new("/run/ringfast/mysite.sock").exists());
    engine.proc.signal(libc::SIGTERM);
    let status = engine.proc.wait_timeout(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{status:?}\n{}", read_lossy(&log));
    assert!(!pidfile.exists());
}

#[test]
fn a_bad_file_is_refused_with_the_key_and_the_line() {
    let dir = TempDir::new("config-bad");
    let tcp = Addr::loopback();
    let cases = [
        (
            "workers = 2\n\nmax_requests = 10\n",
            &[
                "line 3",
                "unknown option `max_requests`",
                "did you mean `max-requests`?",
            ][..],
        ),
        (
            "# a comment\nidle-timeout = \"soon\"\n",
            &[
                "line 2",
                "`idle-timeout`",
                "\"soon\" is not a number of seconds",
            ][..],
        ),
        (
            "fastcgi = [\"127.0.0.1:1\",\n  \"unix:\"]\n",
            &["line 2", "`fastcgi`"][..],
        ),
        (
            "workers = [1, 2]\n",
            &["line 1", "`workers`", "not a list"][..],
        ),
        ("workers = \n", &["line 1"][..]),
    ];
    for (i, (text, wanted)) in cases.iter().enumerate() {
        let file = dir.write(&format!("bad{i}.toml"), text);
        let out = ringfast(&[
            "--config",
            file.to_str().unwrap(),
            "--fastcgi",
            &tcp.to_arg(),
            "--metrics",
            "off",
        ]);
        assert_eq!(out.status.code(), Some(2), "{text:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(file.to_str().unwrap()),
            "{text:?}: the file is named: {err}"
        );
        for w in *wanted {
            assert!(err.contains(w), "{text:?}: {w:?} missing from {err}");
        }
        assert!(!tcp.accepts(), "nothing was bound");
    }
    let out = ringfast(&["--config", dir.join("missing.toml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the configuration file"));
}
