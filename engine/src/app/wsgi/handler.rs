//! The I/O-thread side of a WSGI request: queue the call on the Python pool, pump the body into
//! the bounded body channel, and relay status, headers and body chunks to the [`Response`].
//! Nothing here touches Python, so an I/O thread never waits for the GIL.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::call::{self, App, Call};
use super::environ;
use super::input::{BodyMsg, BODY_CHUNKS, CHUNK};
use super::output::{Event, EVENT_DEPTH};
use super::pool::Pool;
use crate::app::{Handler, HandlerError, Request, Response};

/// Why a WSGI request failed (the details, such as a traceback, are in the log already).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WsgiError {
    /// The application raised, or broke a PEP 3333 rule.
    #[error("the WSGI application failed (see the traceback above)")]
    AppFailed,
    /// The Python thread stopped without finishing the response.
    #[error("the Python thread serving the request went away")]
    ThreadLost,
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

impl Handler for WsgiHandler {
    async fn handle(&self, req: &mut Request, resp: &mut Response) -> Result<(), HandlerError> {
        let vars = environ::cgi_vars(req, &self.app.settings);
        let (body_tx, body_rx) = mpsc::channel(BODY_CHUNKS);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_DEPTH);
        let app = self.app.clone();
        let call = Call {
            vars,
            body: body_rx,
            events: ev_tx,
        };
        self.pool
            .submit(Box::new(move |py| call::run(py, &app, call)))
            .map_err(|_| WsgiError::PoolGone)?;
        let pump = pump_body(req, body_tx);
        let relay = relay(resp, ev_rx);
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

/// Copies the request body into the body channel, chunk by chunk, and marks its end. Stops
/// early when the application no longer reads (its side of the channel is gone).
async fn pump_body(req: &mut Request, tx: mpsc::Sender<BodyMsg>) {
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let n = match req.read(&mut chunk).await {
            Ok(n) => n,
            // Aborted: dropping the sender without End tells the application.
            Err(_) => return,
        };
        let msg = if n == 0 {
            BodyMsg::End
        } else {
            chunk.truncate(n);
            BodyMsg::Data(chunk)
        };
        if tx.send(msg).await.is_err() || n == 0 {
            return;
        }
    }
}

/// Writes what the Python thread produces until the response is complete.
async fn relay(resp: &mut Response, mut rx: mpsc::Receiver<Event>) -> Result<(), HandlerError> {
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Head { status, headers } => {
                resp.set_status(status)?;
                for (name, value) in &headers {
                    resp.add_header_latin1(name, value)?;
                }
            }
            Event::Body(data) => resp.write(&data).await?,
            Event::Done => return Ok(()),
            Event::Failed => return Err(WsgiError::AppFailed.into()),
        }
    }
    Err(WsgiError::ThreadLost.into())
}
