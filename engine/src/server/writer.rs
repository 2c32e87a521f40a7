//! A connection's writer task: sends what handlers queued in [`ConnOut`], one write per batch.

use std::rc::Rc;

use crate::app::exchange::ConnOut;
use crate::io::{Shutdown, Stream};

/// Sends queued bytes until the connection is closed; when asked to close, flushes and then
/// half-closes (FIN) so the peer reads everything and no reset is sent.
pub(crate) async fn run(stream: Rc<Stream>, out: Rc<ConnOut>, conn: u64) {
    let mut spare = Vec::with_capacity(16 * 1024);
    loop {
        if out.is_closed() {
            return;
        }
        if out.is_empty() {
            if out.is_closing() {
                let _ = stream.shutdown(Shutdown::Write);
                return;
            }
            out.writer_wake.notified().await;
            continue;
        }
        out.take(&mut spare);
        let (res, buf) = stream.write_all(spare).await;
        spare = buf;
        spare.clear();
        if let Err(e) = res {
            tracing::debug!(conn, error = %e, "write failed; closing connection");
            out.close();
            return;
        }
        out.sent();
    }
}
