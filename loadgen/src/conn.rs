//! One connection's loop: connect, send requests (closed loop: as soon as a slot is free; open
//! loop: at their intended send times), read responses, classify and record them, reconnect
//! when the connection ends.

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UnixStream};

use crate::response::{Done, Reader};
use crate::timer::PreciseTimer;

/// How late the load generator may send without the delay counting against the server (a
/// timerfd wakes within microseconds, but a busy load thread can still be late).
/// In open loop, a request whose connection was idle at its intended send time and that goes out
/// at most this late is timed from its actual send: the delay is the generator's, not the
/// server's. Later than that, or when the connection was still busy with an earlier request,
/// it is timed from the intended send time (coordinated omission corrected).
const TIMER_SLACK: Duration = Duration::from_millis(2);
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
    let far = Instant::now() + Duration::from_secs(24 * 3600);
    let timer = match PreciseTimer::new(far) {
        Ok(t) => t,
        Err(_) => {
            // Out of descriptors: this connection cannot run; count it as a failed connect.
            ctx.error(ErrorKind::Connect, Instant::now());
            return;
        }
    };
    let mut conn = Conn {
        timer,
        reader: Reader::new(
            cfg.target.protocol,
            cfg.mux,
            cfg.keepalive,
            cfg.method.eq_ignore_ascii_case("HEAD"),
            cfg.expect_body.as_deref().map(Rc::from),
            cfg.ajp_packet_size,
        ),
        inflight: vec![None; cfg.mux],
        free_since: vec![Instant::now(); cfg.mux],
        request: ctx.request.bytes.clone(),
        wbuf: Vec::new(),
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
    /// Wakes the loop for the next send, a timeout or the end of the run.
    timer: PreciseTimer,
    reader: Reader,
    inflight: Vec<Option<InFlight>>,
    /// When each slot last became free (its response completed, or the connection opened).
    free_since: Vec<Instant>,
    request: Vec<u8>,
    wbuf: Vec<u8>,
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
        let opened = Instant::now();
        self.free_since.iter_mut().for_each(|t| *t = opened);
        let far = Instant::now() + Duration::from_secs(24 * 3600);
        if self.timer.reset(far).is_err() {
            return SessionEnd::Stop;
        }
        loop {
            // Send every request that is due, while a slot is free.
            let now = Instant::now();
            if ctx.stopped(now) {
                return SessionEnd::Stop;
            }
            // Every due request goes out in one write.
            self.wbuf.clear();
            while let Some(free) = self.inflight.iter().position(Option::is_none) {
                let intended = match interval {
                    Some(step) if *next_intended <= now => {
                        let at = *next_intended;
                        *next_intended += step;
                        let idle_at_intended = self.free_since[free] <= at;
                        if idle_at_intended && now.saturating_duration_since(at) <= TIMER_SLACK {
                            now
                        } else {
                            at
                        }
                    }
                    Some(_) => break,
                    None => now,
                };
                let id = (free + 1) as u16;
                if let Some(slots) = &ctx.request.fcgi_slots {
                    slots.apply(&mut self.request, id);
                }
                self.wbuf.extend_from_slice(&self.request);
                self.reader.start(id, &ctx.request);
                self.inflight[free] = Some(InFlight {
                    intended,
                    sent: now,
                });
            }
            if !self.wbuf.is_empty() {
                if stream.write_all(&self.wbuf).await.is_err() {
                    self.fail_all(ctx, ErrorKind::Protocol);
                    return SessionEnd::Reconnect;
                }
                ctx.sent(self.wbuf.len(), now);
            }
            // Wait for a response, the next send time, a timeout or the end of the run. One
            // timer serves all three; it is only moved earlier, so a request answered in time
            // costs no timer update (when it fires early, the loop re-arms it).
            let oldest = self.inflight.iter().flatten().map(|f| f.sent).min();
            let deadline = oldest.map(|t| t + cfg.timeout);
            let can_send = interval.is_some() && self.inflight.iter().any(Option::is_none);
            let wake = [can_send.then_some(*next_intended), deadline, ctx.plan.end]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(far);
            if wake < self.timer.deadline() && self.timer.reset(wake).is_err() {
                self.fail_all(ctx, ErrorKind::Protocol);
                return SessionEnd::Stop;
            }
            self.buf.reserve(READ_CHUNK);
            let read = tokio::select! {
                r = stream.read_buf(&mut self.buf) => Some(r),
                _ = self.timer.wait() => None,
            };
            let Some(read) = read else {
                if self.timer.reset(far).is_err() {
                    self.fail_all(ctx, ErrorKind::Protocol);
                    return SessionEnd::Stop;
                }
                let now = Instant::now();
                if ctx.stopped(now) {
                    return SessionEnd::Stop;
                }
                if deadline.is_some_and(|d| now >= d) {
                    self.fail_all(ctx, ErrorKind::Timeout);
                    return SessionEnd::Reconnect;
                }
                continue;
            };
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
            let slot = usize::from(done.id).wrapping_sub(1);
            let Some(flight) = self.inflight.get_mut(slot).and_then(Option::take) else {
                continue;
            };
            self.free_since[slot] = now;
            reuse &= done.reuse;
            if done.status != ctx.config.expect_status {
                ctx.error(ErrorKind::Status, now);
            } else if !done.body_ok {
                ctx.error(ErrorKind::Body, now);
            } else {
                ctx.success(flight.intended, now);
            }
        }
        reuse
    }
}
