//! Per-thread results: latency histogram, counts, bytes, errors by kind; merged at the end.

use hdrhistogram::Histogram;

/// Highest latency recorded, in microseconds (one hour); longer ones are clamped.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// The kinds of failed requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The connection could not be opened.
    Connect,
    /// The server broke the protocol or closed the connection mid-response.
    Protocol,
    /// No complete response within `--timeout`.
    Timeout,
    /// A status other than `--expect-status`.
    Status,
    /// A body other than `--expect-body`.
    Body,
}

/// Errors by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Errors {
    /// Failed connects.
    pub connect: u64,
    /// Protocol errors.
    pub protocol: u64,
    /// Timeouts.
    pub timeout: u64,
    /// Unexpected statuses.
    pub status: u64,
    /// Unexpected bodies.
    pub body: u64,
}

impl Errors {
    /// Counts one error of `kind`.
    pub fn add(&mut self, kind: ErrorKind) {
        match kind {
            ErrorKind::Connect => self.connect += 1,
            ErrorKind::Protocol => self.protocol += 1,
            ErrorKind::Timeout => self.timeout += 1,
            ErrorKind::Status => self.status += 1,
            ErrorKind::Body => self.body += 1,
        }
    }

    /// All errors.
    pub fn total(&self) -> u64 {
        self.connect + self.protocol + self.timeout + self.status + self.body
    }

    fn merge(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.protocol += o.protocol;
        self.timeout += o.timeout;
        self.status += o.status;
        self.body += o.body;
    }
}

/// What one thread measured.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency of successful measured requests, microseconds.
    pub latency: Histogram<u64>,
    /// Successful measured requests.
    pub requests: u64,
    /// Measured errors.
    pub errors: Errors,
    /// Bytes written while measuring.
    pub bytes_sent: u64,
    /// Bytes read while measuring.
    pub bytes_received: u64,
    /// Whether any connect succeeded (warm-up included).
    pub connected: bool,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// Empty statistics.
    pub fn new() -> Self {
        Self {
            // Bounds are constants within hdrhistogram's limits: this cannot fail.
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .unwrap_or_else(|_| unreachable!("valid histogram bounds")),
            requests: 0,
            errors: Errors::default(),
            bytes_sent: 0,
            bytes_received: 0,
            connected: false,
        }
    }

    /// Records a successful request of `latency_us`.
    pub fn record(&mut self, latency_us: u64) {
        self.requests += 1;
        self.latency
            .saturating_record(latency_us.clamp(1, MAX_LATENCY_US));
    }

    /// Adds another thread's statistics.
    pub fn merge(&mut self, other: &Stats) {
        // Same bounds on both sides: add cannot fail.
        let _ = self.latency.add(&other.latency);
        self.requests += other.requests;
        self.errors.merge(&other.errors);
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.connected |= other.connected;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_everything() {
        let mut a = Stats::new();
        a.record(100);
        a.errors.add(ErrorKind::Timeout);
        let mut b = Stats::new();
        b.record(0);
        b.record(MAX_LATENCY_US * 2);
        b.errors.add(ErrorKind::Body);
        b.connected = true;
        b.bytes_sent = 7;
        a.merge(&b);
        assert_eq!(a.requests, 3);
        assert_eq!(a.latency.len(), 3);
        assert_eq!(a.latency.min(), 1);
        assert!(a.latency.max() >= MAX_LATENCY_US);
        assert_eq!(a.errors.total(), 2);
        assert!(a.connected);
        assert_eq!(a.bytes_sent, 7);
    }
}
