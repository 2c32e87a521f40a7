//! The built-in applications selected with `--app`.

use super::{BodyError, Handler, HandlerError, Request, Response};

const HELLO_BODY: &[u8] = b"Hello, World!";

/// Answers every request with 200, `text/plain`, `Hello, World!`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Hello;

impl Handler for Hello {
    async fn handle(&self, _req: &mut Request, resp: &mut Response) -> Result<(), HandlerError> {
        hello(resp).await
    }
}

async fn hello(resp: &mut Response) -> Result<(), HandlerError> {
    resp.add_header("Content-Type", "text/plain")?;
    resp.add_header("Content-Length", "13")?;
    resp.write(HELLO_BODY).await?;
    Ok(())
}

/// A diagnostic app that routes on how the request path ends:
/// `/hello`, `/echo` (the body, collected first, at most [`ECHO_LIMIT`]), `/drain` (the body's
/// length and FNV-1a hash, streamed), `/env`, `/sleep?ms=N`, `/stream?bytes=N&chunk=M`,
/// `/status/NNN`; anything else is 404. Used by the tests and the benchmarks.
#[derive(Debug, Default, Clone, Copy)]
pub struct Diag;

impl Handler for Diag {
    async fn handle(&self, req: &mut Request, resp: &mut Response) -> Result<(), HandlerError> {
        let path = req.path().into_owned();
        if path.ends_with("/hello") {
            hello(resp).await
        } else if path.ends_with("/echo") {
            echo(req, resp).await
        } else if path.ends_with("/drain") {
            drain(req, resp).await
        } else if path.ends_with("/env") {
            env(req, resp).await
        } else if path.ends_with("/sleep") {
            let ms = query_number(req.query(), "ms").unwrap_or(0);
            crate::io::sleep(std::time::Duration::from_millis(ms)).await;
            resp.add_header("Content-Type", "text/plain")?;
            resp.write(format!("slept {ms} ms\n").as_bytes()).await?;
            Ok(())
        } else if path.ends_with("/stream") {
            stream(req, resp).await
        } else if let Some(code) = status_route(&path) {
            resp.set_status(code)?;
            Ok(())
        } else {
            resp.set_status(404)?;
            resp.add_header("Content-Type", "text/plain")?;
            resp.write(b"not found\n").await?;
            Ok(())
        }
    }
}

/// Largest body `/echo` collects before answering 413.
pub const ECHO_LIMIT: usize = 64 << 20;

/// Reads the whole body, then answers with it. Collecting first is deliberate: nginx stops
/// sending the request body once it has the response header, and Apache's mod_proxy_scgi reads
/// the answer only after sending the body, so an echo that answered while still reading would
/// stall behind them once the body outgrows the socket buffers.
async fn echo(req: &mut Request, resp: &mut Response) -> Result<(), HandlerError> {
    let ctype = req
        .header("content-type")
        .unwrap_or("application/octet-stream")
        .to_owned();
    let body = match req.read_to_end(ECHO_LIMIT).await {
        Ok(body) => body,
        Err(BodyError::TooLarge { .. }) => {
            resp.set_status(413)?;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    resp.add_header("Content-Type", &ctype)?;
    resp.add_header("Content-Length", &body.len().to_string())?;
    resp.write(&body).await?;
    Ok(())
}

/// Streams the body through a small buffer and answers with its length and a checksum
/// (FNV-1a, 64 bits, hex): proves large uploads without holding them in memory.
async fn drain(req: &mut Request, resp: &mut Response) -> Result<(), HandlerError> {
    // On the heap: a stack buffer would make every handler's future 16 KiB larger.
    let mut buf = vec![0u8; 16 * 1024];
    let mut total: u64 = 0;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    loop {
        let n = req.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
        for &b in &buf[..n] {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    resp.add_header("Content-Type", "text/plain")?;
    resp.write(format!("{total} {hash:016x}\n").as_bytes())
        .await?;
    Ok(())
}

async fn env(req: &mut Request, resp: &mut Response) -> Result<(), HandlerError> {
    let mut map = serde_json::Map::new();
    for (k, v) in req.vars() {
        map.insert(
            String::from_utf8_lossy(k).into_owned(),
            serde_json::Value::String(String::from_utf8_lossy(v).into_owned()),
        );
    }
    let body = serde_json::to_vec(&serde_json::Value::Object(map))?;
    resp.add_header("Content-Type", "application/json")?;
    resp.add_header("Content-Length", &body.len().to_string())?;
    resp.write(&body).await?;
    Ok(())
}

async fn stream(req: &mut Request, resp: &mut Response) -> Result<(), HandlerError> {
    let total = query_number(req.query(), "bytes").unwrap_or(0);
    let chunk = query_number(req.query(), "chunk")
        .unwrap_or(64 * 1024)
        .clamp(1, 4 << 20) as usize;
    resp.add_header("Content-Type", "application/octet-stream")?;
    let mut buf = vec![0u8; chunk];
    let mut sent: u64 = 0;
    if total == 0 {
        resp.write(&[]).await?;
    }
    while sent < total {
        let n = (total - sent).min(chunk as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = b'a' + ((sent + i as u64) % 26) as u8;
        }
        resp.write(&buf[..n]).await?;
        sent += n as u64;
    }
    Ok(())
}

/// `/status/NNN` at the end of the path.
fn status_route(path: &str) -> Option<u16> {
    let (rest, code) = path.rsplit_once('/')?;
    if !rest.ends_with("/status") && rest != "/status" && rest != "status" {
        return None;
    }
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok().filter(|c| (100..=999).contains(c))
}

/// The numeric value of `key` in a query string.
fn query_number(query: &str, key: &str) -> Option<u64> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

/// The built-in apps, as chosen on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BuiltinApp {
    /// [`Hello`].
    Hello,
    /// [`Diag`].
    Diag,
}

impl Handler for BuiltinApp {
    async fn handle(&self, req: &mut Request, resp: &mut Response) -> Result<(), HandlerError> {
        match self {
            BuiltinApp::Hello => Hello.handle(req, resp).await,
            BuiltinApp::Diag => Diag.handle(req, resp).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(status_route("/status/204"), Some(204));
        assert_eq!(status_route("/app/status/503"), Some(503));
        assert_eq!(status_route("/status/20"), None);
        assert_eq!(status_route("/xstatus/200"), None);
        assert_eq!(query_number("a=1&ms=250", "ms"), Some(250));
        assert_eq!(query_number("ms=x", "ms"), None);
    }
}
