//! The floor (bench/floor/fcgi_floor.c), compiled with gcc and spoken to over real sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const HELLO: &[u8] =
    b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";

/// The floor process, killed on drop.
struct Floor {
    child: Child,
    port: u16,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Floor {
    fn start() -> Floor {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("floor-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("fcgi_floor");
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/floor/fcgi_floor.c");
        let ok = Command::new("gcc")
            .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&bin)
            .arg(src)
            .status()
            .expect("gcc");
        assert!(ok.success(), "gcc failed");
        let mut child = Command::new(&bin)
            .arg("127.0.0.1:0")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().rsplit(':').next().unwrap().parse().unwrap();
        Floor {
            child,
            port,
            _dir: tempdir::Dir(dir),
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn record(kind: u8, id: u16, content: &[u8], padding: u8) -> Vec<u8> {
    let mut r = vec![1, kind, (id >> 8) as u8, id as u8];
    r.extend_from_slice(&(content.len() as u16).to_be_bytes());
    r.extend_from_slice(&[padding, 0]);
    r.extend_from_slice(content);
    r.extend(std::iter::repeat_n(0u8, padding as usize));
    r
}

fn pair(k: &[u8], v: &[u8]) -> Vec<u8> {
    let mut p = vec![k.len() as u8, v.len() as u8];
    p.extend_from_slice(k);
    p.extend_from_slice(v);
    p
}

fn request(id: u16, keep: bool, body: usize) -> Vec<u8> {
    let mut b = record(1, id, &[0, 1, u8::from(keep), 0, 0, 0, 0, 0], 0);
    let mut params = pair(b"REQUEST_METHOD", b"POST");
    params.extend(pair(b"SCRIPT_NAME", b"/hello"));
    b.extend(record(4, id, &params, 3));
    b.extend(record(4, id, b"", 0));
    let chunk = vec![b'x'; 40_000];
    let mut left = body;
    while left > 0 {
        let n = left.min(chunk.len());
        b.extend(record(5, id, &chunk[..n], 5));
        left -= n;
    }
    b.extend(record(5, id, b"", 0));
    b
}

/// Reads records until `ends` END_REQUESTs arrived; returns (stdout per id, ended ids).
fn read_answers(s: &mut TcpStream, ends: usize) -> (Vec<(u16, Vec<u8>)>, Vec<u16>) {
    let mut buf = Vec::new();
    let mut out: Vec<(u16, Vec<u8>)> = Vec::new();
    let mut ended = Vec::new();
    let mut tmp = [0u8; 65536];
    while ended.len() < ends {
        let n = s.read(&mut tmp).unwrap();
        assert!(n > 0, "connection closed early");
        buf.extend_from_slice(&tmp[..n]);
        while buf.len() >= 8 {
            let id = u16::from_be_bytes([buf[2], buf[3]]);
            let len = u16::from_be_bytes([buf[4], buf[5]]) as usize + buf[6] as usize;
            if buf.len() < 8 + len {
                break;
            }
            let content = buf[8..8 + u16::from_be_bytes([buf[4], buf[5]]) as usize].to_vec();
            match buf[1] {
                6 if !content.is_empty() => out.push((id, content)),
                3 => {
                    assert_eq!(&content[4..5], &[0], "protocolStatus REQUEST_COMPLETE");
                    ended.push(id);
                }
                _ => {}
            }
            buf.drain(..8 + len);
        }
    }
    (out, ended)
}

#[test]
fn answers_kept_connections_multiplexed_ids_and_split_records() {
    let floor = Floor::start();
    let mut s = floor.connect();
    s.write_all(&request(1, true, 0)).unwrap();
    let (out, ended) = read_answers(&mut s, 1);
    assert_eq!(out, vec![(1, HELLO.to_vec())]);
    assert_eq!(ended, vec![1]);

    let mut batch = request(7, true, 0);
    batch.extend(request(300, true, 100_000));
    batch.extend(request(65535, true, 10));
    s.write_all(&batch).unwrap();
    let (_, ended) = read_answers(&mut s, 3);
    assert_eq!(ended, vec![7, 300, 65535]);

    // One byte at a time: every record split at every point.
    let req = request(5, true, 1000);
    for b in &req {
        s.write_all(std::slice::from_ref(b)).unwrap();
    }
    let (out, _) = read_answers(&mut s, 1);
    assert_eq!(out, vec![(5, HELLO.to_vec())]);
}

#[test]
fn closes_after_a_request_without_keep_conn() {
    let floor = Floor::start();
    let mut s = floor.connect();
    s.write_all(&request(2, false, 0)).unwrap();
    let (_, ended) = read_answers(&mut s, 1);
    assert_eq!(ended, vec![2]);
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "EOF after the answer");
}

#[test]
fn answers_get_values() {
    let floor = Floor::start();
    let mut s = floor.connect();
    s.write_all(&record(9, 0, &pair(b"FCGI_MPXS_CONNS", b""), 0))
        .unwrap();
    let mut head = [0u8; 8];
    s.read_exact(&mut head).unwrap();
    assert_eq!(head[1], 10, "GET_VALUES_RESULT");
    let mut body = vec![0u8; u16::from_be_bytes([head[4], head[5]]) as usize];
    s.read_exact(&mut body).unwrap();
    assert!(body.windows(15).any(|w| w == b"FCGI_MPXS_CONNS"));
}
