//! The I/O-thread side of a WSGI request: copy the request variables, queue the request on the
//! Python pool, feed the body to the [`Link`] as the connection delivers it, and write what the
//! Python thread sends into the [`Response`]. Nothing here touches Python, so an I/O thread
//! never waits for the GIL.

use std::cell::RefCell;
use std::future::poll_fn;
use std::sync::Arc;

use super::call::App;
use super::environ::Vars;
use super::link::{Head, Link, Msg};
use super::pool::Pool;
use crate::app::{Handler, HandlerError, Request, Response, ResponseError};

/// Why a WSGI request failed (the details, such as a traceback, are in the log already).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WsgiError {
    /// The application raised, or broke a PEP 3333 rule.
    #[error("the WSGI application failed (see the traceback above)")]
    AppFailed,
    /// The Python thread pool is gone.
    #[error("the Python thread pool is gone")]
    PoolGone,
}

/// Serves a loaded WSGI application. Cheap to clone: one per worker thread, all sharing the
/// application and its Python thread pool.
#[derive(Clone)]
pub struct WsgiHandler {
    pub(crate) app: Arc<App>,
    pub(crate) pool: Arc<Pool>,
}

impl std::fmt::Debug for WsgiHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsgiHandler").finish_non_exhaustive()
    }
}

/// Closes the link when the handler returns or its future is dropped (request aborted).
struct CloseOnDrop<'a>(&'a Link);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Handler for WsgiHandler {
    async fn handle(&self, req: &mut Request, resp: &mut Response) -> Result<(), HandlerError> {
        let vars = Vars::new(req.vars(), &self.app.settings);
        let link = Arc::new(Link::new(vars));
        let _close = CloseOnDrop(&link);
        self.pool
            .submit(link.clone())
            .map_err(|_| WsgiError::PoolGone)?;
        let pump = pump_body(req, &link);
        let relay = relay(resp, &link);
        tokio::pin!(pump, relay);
        let mut pumping = true;
        loop {
            tokio::select! {
                biased;
                done = &mut relay => return done,
                _ = &mut pump, if pumping => pumping = false,
            }
        }
    }
}

/// Largest read from the connection's body buffer at once.
const SCRATCH: usize = 64 * 1024;
/// Scratch buffers an I/O thread keeps for reuse.
const SCRATCH_KEPT: usize = 16;

thread_local! {
    static SCRATCH_POOL: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// A body read buffer, reused by the I/O thread's later requests.
struct Scratch(Option<Box<[u8]>>);

impl Scratch {
    fn take() -> Scratch {
        let kept = SCRATCH_POOL.with(|p| p.borrow_mut().pop());
        Scratch(Some(
            kept.unwrap_or_else(|| vec![0u8; SCRATCH].into_boxed_slice()),
        ))
    }

    fn buf(&mut self) -> &mut [u8] {
        self.0.as_deref_mut().unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            SCRATCH_POOL.with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < SCRATCH_KEPT {
                    p.push(b);
                }
            });
        }
    }
}

/// Copies the request body into the link while it has room, and marks its end. Stops early when
/// the application is done with the request. The first read, which for a request without a
/// body only finds its end, needs no large buffer.
async fn pump_body(req: &mut Request, link: &Link) {
    let mut first = [0u8; 512];
    let mut scratch: Option<Scratch> = None;
    loop {
        if !poll_fn(|cx| link.poll_body_room(cx)).await {
            return;
        }
        let buf = match scratch.as_mut() {
            Some(s) => s.buf(),
            None => &mut first[..],
        };
        let n = match req.read(buf).await {
            Ok(n) => n,
            Err(_) => return link.end_body(true),
        };
        if n == 0 {
            return link.end_body(false);
        }
        let data = match scratch.as_mut() {
            Some(s) => &s.buf()[..n],
            None => &first[..n],
        };
        link.push_body(data);
        if scratch.is_none() {
            scratch = Some(Scratch::take());
        }
    }
}

fn write_head(resp: &mut Response, head: &Head) -> Result<(), ResponseError> {
    resp.set_status(head.status)?;
    for (name, value, ascii) in head.fields() {
        if ascii {
            resp.add_header(name, value)?;
        } else {
            resp.add_header_latin1(name, value)?;
        }
    }
    Ok(())
}

/// Writes what the Python thread sends until the response is complete.
async fn relay(resp: &mut Response, link: &Link) -> Result<(), HandlerError> {
    loop {
        match poll_fn(|cx| link.poll_msg(cx)).await {
            Msg::Head(head) => write_head(resp, &head)?,
            Msg::Body(data) => resp.write(&data).await?,
            Msg::Whole(head, body) => {
                write_head(resp, &head)?;
                resp.write(&body).await?;
                return Ok(());
            }
            Msg::End => return Ok(()),
            Msg::Failed => return Err(WsgiError::AppFailed.into()),
        }
    }
}
