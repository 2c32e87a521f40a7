//! One connection's loop: connect, send requests (closed loop: as soon as a slot is free; open
//! loop: at their intended send times), read responses, classify and record them, reconnect
//! when the connection ends.

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::sleep_until;

use crate::response::{Done, Reader};
use crate::run::ThreadCtx;
use crate::stats::ErrorKind;
use crate::target::Endpoint;

/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;
/// Pause after a failed connect before the next attempt.
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    async fn connect(endpoint: &Endpoint) -> io::Result<Stream> {
        match endpoint {
            Endpoint::Tcp { addr, .. } => {
                let s = TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                Ok(Stream::Tcp(s))
            }
            Endpoint::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
        }
    }

    async fn read_buf(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read_buf(buf).await,
            Stream::Unix(s) => s.read_buf(buf).await,
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(bytes).await,
            Stream::Unix(s) => s.write_all(bytes).await,
        }
    }
}

/// A request in flight: when it was meant to be sent and when it was.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    intended: Instant,
    sent: Instant,
}

/// Why a session (one connection) ended.
enum SessionEnd {
    /// The run is over.
    Stop,
    /// Open a new connection and go on.
    Reconnect,
}

/// Runs connection number `index` (over all threads) until the run ends.
pub async fn run(ctx: Rc<ThreadCtx>, index: usize) {
    let cfg = &ctx.config;
    let interval = cfg
        .rate
        .map(|rate| Duration::from_secs_f64(cfg.connections as f64 / rate));
    // Spread the connections' schedules evenly over one interval.
    let mut next_intended = match interval {
        Some(i) => ctx.plan.start + i.mul_f64(index as f64 / cfg.connections as f64),
        None => ctx.plan.start,
    };
    let mut conn = Conn {
        reader: Reader::new(
            cfg.target.protocol,
            cfg.mux,
            cfg.keepalive,
            cfg.expect_body.as_deref().map(Rc::from),
        ),
        inflight: vec![None; cfg.mux],
        request: ctx.request.bytes.clone(),
        buf: Vec::with_capacity(READ_CHUNK),
        out: Vec::new(),
        done: Vec::new(),
    };
    loop {
        if ctx.stopped(Instant::now()) {
            return;
        }
        let connect = tokio::time::timeout(cfg.timeout, Stream::connect(&cfg.target.endpoint));
        let stream = match connect.await {
            Ok(Ok(stream)) => stream,
            Ok(Err(_)) | Err(_) => {
                ctx.error(ErrorKind::Connect, Instant::now());
                tokio::time::sleep(CONNECT_BACKOFF).await;
                continue;
            }
        };
        ctx.stats.borrow_mut().connected = true;
        match conn
            .session(&ctx, stream, interval, &mut next_intended)
            .await
        {
            SessionEnd::Stop => return,
            SessionEnd::Reconnect => {}
        }
    }
}

struct Conn {
    reader: Reader,
    inflight: Vec<Option<InFlight>>,
    request: Vec<u8>,
    buf: Vec<u8>,
    out: Vec<u8>,
    done: Vec<Done>,
}

impl Conn {
    /// Fails every request in flight with `kind`.
    fn fail_all(&mut self, ctx: &ThreadCtx, kind: ErrorKind) {
        let now = Instant::now();
        for slot in &mut self.inflight {
            if slot.take().is_some() {
                ctx.error(kind, now);
            }
        }
    }

    async fn session(
        &mut self,
        ctx: &ThreadCtx,
        mut stream: Stream,
        interval: Option<Duration>,
        next_intended: &mut Instant,
    ) -> SessionEnd {
        let cfg = &ctx.config;
        self.buf.clear();
        loop {
            // Send every request that is due, while a slot is free.
            let now = Instant::now();
            if ctx.stopped(now) {
                return SessionEnd::Stop;
            }
            while let Some(free) = self.inflight.iter().position(Option::is_none) {
                let intended = match interval {
                    Some(step) if *next_intended <= now => {
                        let at = *next_intended;
                        *next_intended += step;
                        at
                    }
                    Some(_) => break,
                    None => now,
                };
                let id = (free + 1) as u16;
                if let Some(slots) = &ctx.request.fcgi_slots {
                    slots.apply(&mut self.request, id);
                }
                self.reader.start(id, &ctx.request);
                if stream.write_all(&self.request).await.is_err() {
                    ctx.error(ErrorKind::Protocol, Instant::now());
                    self.fail_all(ctx, ErrorKind::Protocol);
                    return SessionEnd::Reconnect;
                }
                let sent = Instant::now();
                ctx.sent(self.request.len(), sent);
                self.inflight[free] = Some(InFlight { intended, sent });
            }
            // Wait for a response, the next send time, a timeout or the end of the run.
            let oldest = self.inflight.iter().flatten().map(|f| f.sent).min();
            let deadline = oldest.map(|t| t + cfg.timeout);
            let can_send = interval.is_some() && self.inflight.iter().any(Option::is_none);
            let far = now + Duration::from_secs(3600);
            self.buf.reserve(READ_CHUNK);
            let read = tokio::select! {
                r = stream.read_buf(&mut self.buf) => Some(r),
                () = sleep_until((*next_intended).into()), if can_send => None,
                () = sleep_until(deadline.unwrap_or(far).into()), if deadline.is_some() => {
                    self.fail_all(ctx, ErrorKind::Timeout);
                    return SessionEnd::Reconnect;
                }
                () = sleep_until(ctx.plan.end.unwrap_or(far).into()), if ctx.plan.end.is_some() => {
                    return SessionEnd::Stop;
                }
            };
            let Some(read) = read else { continue };
            let now = Instant::now();
            let n = match read {
                Ok(n) => n,
                Err(_) => {
                    self.fail_all(ctx, ErrorKind::Protocol);
                    return SessionEnd::Reconnect;
                }
            };
            ctx.received(n, now);
            if n == 0 {
                if self.inflight.iter().all(Option::is_none) {
                    // The server closed an idle connection (keep-alive timeout).
                    return SessionEnd::Reconnect;
                }
                if self.reader.eof(&mut self.done).is_ok() {
                    self.complete(ctx, now);
                }
                self.fail_all(ctx, ErrorKind::Protocol);
                return SessionEnd::Reconnect;
            }
            let used =
                match self
                    .reader
                    .read(&self.buf, &ctx.request, &mut self.done, &mut self.out)
                {
                    Ok(used) => used,
                    Err(_) => {
                        self.complete(ctx, now);
                        self.fail_all(ctx, ErrorKind::Protocol);
                        return SessionEnd::Reconnect;
                    }
                };
            self.buf.drain(..used);
            if !self.out.is_empty() {
                let ok = stream.write_all(&self.out).await.is_ok();
                ctx.sent(self.out.len(), Instant::now());
                self.out.clear();
                if !ok {
                    self.fail_all(ctx, ErrorKind::Protocol);
                    return SessionEnd::Reconnect;
                }
            }
            if !self.complete(ctx, now) {
                self.fail_all(ctx, ErrorKind::Protocol);
                return SessionEnd::Reconnect;
            }
        }
    }

    /// Records the completed responses; false when the connection may not be reused.
    fn complete(&mut self, ctx: &ThreadCtx, now: Instant) -> bool {
        let mut reuse = true;
        for done in self.done.drain(..) {
            let Some(flight) = self
                .inflight
                .get_mut(usize::from(done.id).wrapping_sub(1))
                .and_then(Option::take)
            else {
                continue;
            };
            reuse &= done.reuse;
            if done.status != ctx.config.expect_status {
                ctx.error(ErrorKind::Status, now);
            } else if !done.body_ok {
                ctx.error(ErrorKind::Body, now);
            } else {
                ctx.success(flight.intended, flight.sent, now);
            }
        }
        reuse
    }
}
