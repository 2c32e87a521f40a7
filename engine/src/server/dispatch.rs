//! Starting a request's handler task, and refusing a request without one; shared by every
//! protocol driver.

use std::rc::Rc;

use super::listener::Protocol;
use super::worker::WorkerCtx;
use crate::app::exchange::{Exchange, Framing};
use crate::app::{CatchUnwind, Handler, Request, Response};
use crate::io::{self, TaskHandle};

/// Answers a request with a bare status and no body, without running the handler, and counts
/// it in the metrics as a request that ended with that status.
pub(crate) fn refuse_request<H>(ctx: &WorkerCtx<H>, ex: &Rc<Exchange>, status: u16) {
    let mut resp = Response::new(ex.clone());
    resp.set_timer(ctx.metrics.request_started(protocol_of(ex.framing())));
    let _ = resp.set_status(status);
    resp.end_now();
}

/// The protocol a response is framed for (the `protocol` label of the metrics).
fn protocol_of(framing: Framing) -> Protocol {
    match framing {
        Framing::Fcgi { .. } => Protocol::FastCgi,
        Framing::Scgi => Protocol::Scgi,
        Framing::Ajp { .. } => Protocol::Ajp,
    }
}

/// Starts the handler for a request whose variables are complete (they are in `ex`). The
/// request counts as started (metrics) from here until its response ends.
pub(crate) fn spawn_handler<H: Handler>(
    ctx: Rc<WorkerCtx<H>>,
    ex: Rc<Exchange>,
    conn: u64,
    id: u16,
) -> TaskHandle {
    let (req, resp) = prepare(&ctx, ex);
    io::spawn(run_handler(ctx, req, resp, conn, id))
}

/// The request and response a handler gets for an exchange whose variables are complete; the
/// request counts (metrics, `--max-requests`) from here.
pub(crate) fn prepare<H>(ctx: &WorkerCtx<H>, ex: Rc<Exchange>) -> (Request, Response) {
    if let Some(b) = &ctx.budget {
        b.count();
    }
    let req = Request::new(ex.take_params(), ex.clone());
    let protocol = protocol_of(ex.framing());
    let mut resp = Response::new(ex);
    resp.set_timer(ctx.metrics.request_started(protocol));
    (req, resp)
}

/// Runs a handler to the end of its response, turning an error or a panic into a failed
/// request.
pub(crate) async fn run_handler<H: Handler>(
    ctx: Rc<WorkerCtx<H>>,
    mut req: Request,
    mut resp: Response,
    conn: u64,
    id: u16,
) {
    let outcome = CatchUnwind::new(ctx.handler.handle(&mut req, &mut resp)).await;
    match outcome {
        Ok(Ok(())) => {
            let _ = resp.finish().await;
        }
        Ok(Err(e)) => {
            tracing::warn!(conn, request = id, error = %e, "handler failed");
            resp.fail();
        }
        Err(()) => {
            tracing::error!(conn, request = id, "handler panicked; request failed");
            resp.fail();
        }
    }
}
