//! The channel between the prefork supervisor and one worker process: a Unix socket pair made
//! before the fork.
//!
//! The worker says when it is ready (its application loaded, its workers started) and answers
//! the supervisor's requests for its `/metrics` page. Frames are `kind` (1 byte), `seq` (u32),
//! `len` (u32), then `len` bytes; the sequence number lets the supervisor drop a late answer to
//! a request it gave up on.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Worker to supervisor: the application is loaded and the workers run.
const READY: u8 = b'R';
/// Supervisor to worker: send your metrics page.
const QUERY: u8 = b'Q';
/// Worker to supervisor: a metrics page.
const PAGE: u8 = b'M';
/// Worker to supervisor: I reached --max-requests and am stopping; start my replacement.
const RETIRING: u8 = b'X';

/// The largest page accepted from a worker process.
const MAX_PAGE: usize = 64 * 1024 * 1024;

fn write_frame(s: &mut UnixStream, kind: u8, seq: u32, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut head = [0u8; 9];
    head[0] = kind;
    head[1..5].copy_from_slice(&seq.to_be_bytes());
    head[5..9].copy_from_slice(&len.to_be_bytes());
    s.write_all(&head)?;
    s.write_all(payload)
}

fn read_frame(s: &mut UnixStream) -> io::Result<(u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    s.read_exact(&mut head)?;
    let seq = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    let len = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) as usize;
    if len > MAX_PAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("control frame of {len} bytes"),
        ));
    }
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload)?;
    Ok((head[0], seq, payload))
}

/// The worker process's end.
#[derive(Debug)]
pub(crate) struct WorkerEnd(UnixStream);

/// Tells the supervisor this worker process is retiring (see [`WorkerEnd::serve`]).
#[derive(Debug, Clone)]
pub(crate) struct RetireNotice(Arc<Mutex<UnixStream>>);

impl RetireNotice {
    /// Sends the notice; the supervisor starts a replacement at once.
    pub(crate) fn send(&self) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = write_frame(&mut s, RETIRING, 0, b"") {
            tracing::warn!(error = %e, "cannot tell the supervisor this process is retiring");
        }
    }
}

impl WorkerEnd {
    /// Announces readiness, then answers metrics queries on a thread of its own until the
    /// channel closes. `render` gives the page (empty with `--metrics off`). Returns the handle
    /// that announces retirement.
    pub(crate) fn serve(
        self,
        render: impl Fn() -> String + Send + 'static,
    ) -> io::Result<RetireNotice> {
        let mut reader = self.0.try_clone()?;
        let writer = Arc::new(Mutex::new(self.0));
        {
            let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
            write_frame(&mut w, READY, 0, b"")?;
        }
        let notice = RetireNotice(writer.clone());
        std::thread::Builder::new()
            .name("ringfast-control".into())
            .spawn(move || loop {
                match read_frame(&mut reader) {
                    Ok((QUERY, seq, _)) => {
                        let page = render();
                        let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
                        if write_frame(&mut w, PAGE, seq, page.as_bytes()).is_err() {
                            return;
                        }
                    }
                    Ok((kind, _, _)) => {
                        tracing::warn!(kind, "unexpected control frame from the supervisor");
                    }
                    // The supervisor is gone (the worker process has PR_SET_PDEATHSIG, so it is
                    // being stopped too).
                    Err(_) => return,
                }
            })?;
        Ok(notice)
    }
}

/// The supervisor's end of one worker process's channel.
#[derive(Debug)]
pub(crate) struct SupervisorEnd {
    stream: UnixStream,
    seq: u32,
    /// A retirement notice arrived while waiting for a page.
    retiring_seen: bool,
}

/// What a worker process said without being asked.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// It is ready.
    Ready,
    /// It reached --max-requests and is stopping.
    Retiring,
    /// A late answer to a query that timed out: nothing to do.
    Stale,
    /// The channel closed: the process is exiting or dead.
    Closed,
}

impl SupervisorEnd {
    /// The descriptor to poll for events.
    pub(crate) fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.stream)
    }

    /// Reads one event (call when the descriptor is readable).
    pub(crate) fn read_event(&mut self) -> Event {
        let _ = self.stream.set_read_timeout(Some(Duration::from_secs(2)));
        match read_frame(&mut self.stream) {
            Ok((READY, _, _)) => Event::Ready,
            Ok((RETIRING, _, _)) => Event::Retiring,
            Ok(_) => Event::Stale,
            Err(_) => Event::Closed,
        }
    }

    /// Whether a retirement notice arrived during a query (and was not reported yet).
    pub(crate) fn take_retiring(&mut self) -> bool {
        std::mem::take(&mut self.retiring_seen)
    }

    /// Asks for the worker process's metrics page, waiting at most `timeout`.
    pub(crate) fn query_page(&mut self, timeout: Duration) -> io::Result<String> {
        self.seq = self.seq.wrapping_add(1);
        self.stream.set_read_timeout(Some(timeout))?;
        self.stream.set_write_timeout(Some(timeout))?;
        write_frame(&mut self.stream, QUERY, self.seq, b"")?;
        loop {
            let (kind, seq, payload) = read_frame(&mut self.stream)?;
            // An answer to an earlier query that timed out: skip it.
            if kind == PAGE && seq == self.seq {
                return String::from_utf8(payload)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
            }
            if kind == RETIRING {
                self.retiring_seen = true;
            }
        }
    }
}

/// A connected pair: the supervisor keeps one end, the forked worker process the other.
pub(crate) fn pair() -> io::Result<(SupervisorEnd, WorkerEnd)> {
    let (a, b) = UnixStream::pair()?;
    Ok((
        SupervisorEnd {
            stream: a,
            seq: 0,
            retiring_seen: false,
        },
        WorkerEnd(b),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_then_pages_in_order() {
        let (mut sup, worker) = pair().unwrap();
        let notice = worker.serve(|| "page\n".to_string()).unwrap();
        assert_eq!(sup.read_event(), Event::Ready);
        for _ in 0..3 {
            assert_eq!(sup.query_page(Duration::from_secs(5)).unwrap(), "page\n");
        }
        notice.send();
        assert_eq!(sup.read_event(), Event::Retiring);
    }

    #[test]
    fn a_closed_channel_is_reported() {
        let (mut sup, worker) = pair().unwrap();
        drop(worker);
        assert_eq!(sup.read_event(), Event::Closed);
    }

    #[test]
    fn a_late_answer_is_skipped() {
        let (mut sup, mut worker) = pair().unwrap();
        // The worker answers query 1 twice (once late, as if the first answer was slow).
        let t = std::thread::spawn(move || {
            let (k, seq, _) = read_frame(&mut worker.0).unwrap();
            assert_eq!(k, QUERY);
            write_frame(&mut worker.0, PAGE, seq.wrapping_sub(1), b"stale").unwrap();
            write_frame(&mut worker.0, PAGE, seq, b"fresh").unwrap();
            worker
        });
        assert_eq!(sup.query_page(Duration::from_secs(5)).unwrap(), "fresh");
        drop(t.join().unwrap());
    }
}
