//! Tests over real loopback sockets: the poller must report what the ring reports.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::time::{Duration, Instant};

use super::*;
use crate::io::loop_io::{BufError, LinkMode, LinkedIds, LoopIo};

const GROUP: u16 = 0;
const ECANCELED: i32 = -libc::ECANCELED;

fn poller(count: u32, size: u32) -> (Poller, BufPool) {
    Poller::open(64, GROUP, count, size).expect("poller")
}

fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (server, _) = l.accept().unwrap();
    (client, server)
}

/// Submits and reaps until `done(all so far)` or `limit` passes.
fn reap_until(
    p: &mut Poller,
    limit: Duration,
    done: impl Fn(&[Completion]) -> bool,
) -> Vec<Completion> {
    let deadline = Instant::now() + limit;
    let mut all = Vec::new();
    loop {
        p.drain_completions(&mut all);
        if done(&all) {
            return all;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return all;
        }
        p.submit_and_wait(1, Some(left.min(Duration::from_millis(50))))
            .expect("submit_and_wait");
    }
}

fn has(ud: u64) -> impl Fn(&[Completion]) -> bool {
    move |all| all.iter().any(|c| c.user_data == ud)
}

fn of(all: &[Completion], ud: u64) -> Vec<Completion> {
    all.iter().copied().filter(|c| c.user_data == ud).collect()
}

/// The descriptor's (device, inode): tells a closed (or closed and reused) descriptor from the
/// original even when other tests open descriptors in parallel.
fn fd_identity(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: fstat writes into a zeroed stat buffer of the right type.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::fstat(fd, &mut st) == 0).then_some((st.st_dev, st.st_ino))
    }
}

/// Closes with a reset (SO_LINGER 0) instead of a FIN.
fn reset(s: TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads a live linger struct of the size given.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as u32,
        );
    }
    drop(s);
}

/// The bytes of every receive completion for `ud`, claimed, copied and recycled in order.
fn take_data(bufs: &mut BufPool, all: &[Completion], ud: u64) -> Vec<u8> {
    let mut data = Vec::new();
    for c in all.iter().filter(|c| c.user_data == ud && c.result > 0) {
        let bid = c.buffer_id().expect("a receive with data names its buffer");
        bufs.claim(bid).unwrap();
        data.extend_from_slice(bufs.buffer(bid, c.result as usize).unwrap());
        bufs.recycle(bid).unwrap();
    }
    data
}

#[test]
fn a_new_socket_is_read_at_once_and_then_on_readiness() {
    let (p, mut bufs) = poller(8, 4096);
    let mut p = p;
    let (mut client, server) = tcp_pair();
    client.write_all(b"first").unwrap();
    p.recv_multishot(server.as_raw_fd(), GROUP, 1).unwrap();
    // No readiness is waited for: the data is already there.
    p.submit_and_wait(0, Some(Duration::ZERO)).unwrap();
    let mut all = Vec::new();
    p.drain_completions(&mut all);
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(all[0].more());
    assert_eq!(take_data(&mut bufs, &all, 1), b"first");
    let fd = server.as_raw_fd() as usize;
    assert_eq!(
        p.slots[fd].registered, 0,
        "not registered before the loop waits"
    );
    client.write_all(b"second").unwrap();
    let all = reap_until(&mut p, Duration::from_secs(2), has(1));
    assert!(all[0].more());
    assert_eq!(take_data(&mut bufs, &all, 1), b"second");
    assert_eq!(p.slots[fd].registered, STREAM_EVENTS);
    assert_eq!(bufs.available(), 8, "every buffer recycled");
}

#[test]
fn end_of_stream_ends_the_receive() {
    let (mut p, mut bufs) = poller(8, 4096);
    let (mut client, server) = tcp_pair();
    p.recv_multishot(server.as_raw_fd(), GROUP, 1).unwrap();
    reap_until(&mut p, Duration::from_millis(20), |_| false);
    client.write_all(b"bye").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let all = reap_until(&mut p, Duration::from_secs(2), |a| {
        a.iter().any(|c| c.result == 0)
    });
    let last = all.last().unwrap();
    assert_eq!((last.result, last.more()), (0, false), "{all:?}");
    assert_eq!(last.buffer_id(), None);
    assert_eq!(take_data(&mut bufs, &all, 1), b"bye");
    // Ended: nothing more comes.
    let later = reap_until(&mut p, Duration::from_millis(50), |_| false);
    assert!(later.is_empty(), "{later:?}");
}

#[test]
fn data_and_fin_before_the_first_read_are_both_reported() {
    let (mut p, mut bufs) = poller(8, 4096);
    let (mut client, server) = tcp_pair();
    client.write_all(b"all at once").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    p.recv_multishot(server.as_raw_fd(), GROUP, 1).unwrap();
    let all = reap_until(&mut p, Duration::from_secs(2), |a| {
        a.iter().any(|c| c.result == 0)
    });
    assert_eq!(take_data(&mut bufs, &all, 1), b"all at once");
    assert!(!all.last().unwrap().more());
}

#[test]
fn a_full_pool_delays_receiving_until_a_buffer_is_recycled() {
    let (mut p, mut bufs) = poller(2, 16);
    let (mut client, server) = tcp_pair();
    let sent: Vec<u8> = (0..100u8).collect();
    client.write_all(&sent).unwrap();
    p.recv_multishot(server.as_raw_fd(), GROUP, 1).unwrap();
    let first = reap_until(&mut p, Duration::from_secs(2), |a| a.len() >= 2);
    assert_eq!(first.len(), 2);
    assert_eq!(bufs.available(), 0);
    // Both buffers are out: the poller waits (no -ENOBUFS, no busy loop).
    let t = Instant::now();
    let wait = p
        .submit_and_wait(1, Some(Duration::from_millis(60)))
        .unwrap();
    assert_eq!(wait, Wait::TimedOut);
    assert!(t.elapsed() >= Duration::from_millis(50));
    let mut got = take_data(&mut bufs, &first, 1);
    while got.len() < sent.len() {
        let more = reap_until(&mut p, Duration::from_secs(2), |a| !a.is_empty());
        assert!(!more.is_empty(), "receiving resumed after recycling");
        assert!(more.iter().all(|c| c.more() && c.result > 0), "{more:?}");
        got.extend(take_data(&mut bufs, &more, 1));
    }
    assert_eq!(got, sent);
}

#[test]
fn one_socket_fills_a_bounded_number_of_buffers_per_turn() {
    let (mut p, mut bufs) = poller(64, 16);
    let (mut client, server) = tcp_pair();
    let sent = vec![7u8; 16 * (READS_PER_TURN * 3)];
    client.write_all(&sent).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    p.recv_multishot(server.as_raw_fd(), GROUP, 1).unwrap();
    p.submit_and_wait(0, Some(Duration::ZERO)).unwrap();
    let mut turn = Vec::new();
    p.drain_completions(&mut turn);
    assert_eq!(turn.len(), READS_PER_TURN);
    let mut got = take_data(&mut bufs, &turn, 1);
    // The rest comes on the next turns without new readiness.
    while got.len() < sent.len() {
        let more = reap_until(&mut p, Duration::from_secs(2), |a| !a.is_empty());
        assert!(more.len() <= READS_PER_TURN);
        got.extend(take_data(&mut bufs, &more, 1));
    }
    assert_eq!(got, sent);
}

#[test]
fn a_receive_error_ends_the_receive() {
    let (mut p, _bufs) = poller(8, 4096);
    let (client, server) = tcp_pair();
    p.recv_multishot(server.as_raw_fd(), GROUP, 1).unwrap();
    reap_until(&mut p, Duration::from_millis(20), |_| false);
    reset(client);
    let all = reap_until(&mut p, Duration::from_secs(2), has(1));
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].result, -libc::ECONNRESET);
    assert!(!all[0].more());
}

#[test]
fn cancel_ends_the_target_and_reports_itself() {
    let (mut p, _bufs) = poller(8, 4096);
    let (mut client, server) = tcp_pair();
    p.recv_multishot(server.as_raw_fd(), GROUP, 1).unwrap();
    p.cancel(1, 2).unwrap();
    let all = reap_until(&mut p, Duration::from_secs(1), |a| has(1)(a) && has(2)(a));
    assert_eq!(of(&all, 1)[0].result, ECANCELED);
    assert!(!of(&all, 1)[0].more());
    assert_eq!(of(&all, 2)[0].result, 0);
    // Nothing is received any more; the data stays in the socket for a re-armed receive.
    client.write_all(b"kept").unwrap();
    let later = reap_until(&mut p, Duration::from_millis(50), |_| false);
    assert!(later.is_empty(), "{later:?}");
    p.recv_multishot(server.as_raw_fd(), GROUP, 3).unwrap();
    let all = reap_until(&mut p, Duration::from_secs(1), has(3));
    assert_eq!(of(&all, 3)[0].result, 4);
    // Cancelling what is not pending: -ENOENT.
    p.cancel(99, 4).unwrap();
    let all = reap_until(&mut p, Duration::from_secs(1), has(4));
    assert_eq!(of(&all, 4)[0].result, -libc::ENOENT);
}

#[test]
fn multishot_accept_and_its_cancellation() {
    let (mut p, _bufs) = poller(8, 4096);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    p.accept_multishot(l.as_raw_fd(), 1).unwrap();
    let clients: Vec<_> = (0..3)
        .map(|_| TcpStream::connect(l.local_addr().unwrap()).unwrap())
        .collect();
    let all = reap_until(&mut p, Duration::from_secs(2), |a| a.len() >= 3);
    assert_eq!(all.len(), 3);
    for c in &all {
        assert!(c.result >= 0 && c.more(), "{c:?}");
        // SAFETY: the accepted descriptor is ours and closed once.
        unsafe { libc::close(c.result) };
    }
    p.cancel(1, 2).unwrap();
    let all = reap_until(&mut p, Duration::from_secs(1), has(2));
    assert_eq!(of(&all, 1)[0].result, ECANCELED);
    assert!(!of(&all, 1)[0].more());
    // Later connections stay in the backlog for someone else.
    let _late = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    assert!(reap_until(&mut p, Duration::from_millis(50), |_| false).is_empty());
    l.set_nonblocking(true).unwrap();
    assert!(l.accept().is_ok(), "the late connection is still queued");
    drop(clients);
}

#[test]
fn poll_multishot_reports_an_eventfd_each_time_it_is_ready() {
    let (mut p, _bufs) = poller(8, 4096);
    let q = crate::io::wake::ReadyQueue::new().unwrap();
    p.poll_multishot(q.eventfd(), libc::POLLIN as u32, 5)
        .unwrap();
    for _ in 0..2 {
        let w = crate::io::wake::SlotWaker::new(q.clone(), 1).waker();
        std::thread::spawn(move || w.wake()).join().unwrap();
        let all = reap_until(&mut p, Duration::from_secs(1), has(5));
        assert_eq!(all[0].result & libc::POLLIN as i32, libc::POLLIN as i32);
        assert!(all[0].more());
        q.clear_eventfd();
    }
    assert!(reap_until(&mut p, Duration::from_millis(30), |_| false).is_empty());
}

#[test]
fn a_wait_with_nothing_to_report_times_out() {
    let (mut p, _bufs) = poller(8, 4096);
    let t = Instant::now();
    let w = p
        .submit_and_wait(1, Some(Duration::from_millis(30)))
        .unwrap();
    assert_eq!(w, Wait::TimedOut);
    assert!(t.elapsed() >= Duration::from_millis(30));
}

#[test]
fn a_short_send_finishes_when_the_peer_reads() {
    let (mut p, _bufs) = poller(8, 4096);
    let (mut client, server) = tcp_pair();
    let fd = server.as_raw_fd();
    let data = vec![1u8; 16 << 20];
    // SAFETY: `data` outlives the send's completion, which is reaped below.
    unsafe { p.send(fd, data.as_ptr(), data.len() as u32, 0, 1).unwrap() };
    // The peer reads nothing: the socket fills and the rest waits for EPOLLOUT.
    assert!(reap_until(&mut p, Duration::from_millis(50), |_| false).is_empty());
    assert_ne!(p.slots[fd as usize].registered & libc::EPOLLOUT as u32, 0);
    let reader = std::thread::spawn(move || {
        let mut sink = vec![0u8; 1 << 20];
        let mut n = 0;
        while n < 16 << 20 {
            n += client.read(&mut sink).unwrap();
        }
        n
    });
    let all = reap_until(&mut p, Duration::from_secs(10), has(1));
    assert_eq!(all[0].result, data.len() as i32);
    assert_eq!(reader.join().unwrap(), data.len());
    assert_eq!(
        p.slots[fd as usize].registered & libc::EPOLLOUT as u32,
        0,
        "no more EPOLLOUT wake-ups once the send is done"
    );
}

#[test]
fn a_blocked_send_can_be_cancelled() {
    let (mut p, _bufs) = poller(8, 4096);
    let (_client, server) = tcp_pair();
    let data = vec![1u8; 16 << 20];
    // SAFETY: `data` outlives the send's completion, reaped below.
    unsafe {
        p.send(server.as_raw_fd(), data.as_ptr(), data.len() as u32, 0, 1)
            .unwrap()
    };
    p.cancel(1, 2).unwrap();
    let all = reap_until(&mut p, Duration::from_secs(1), |a| has(1)(a) && has(2)(a));
    // The count that went out before the cancel (as a ring reports a partly done send).
    let sent = of(&all, 1)[0].result;
    assert!(
        sent > 0 && (sent as usize) < data.len(),
        "the part sent: {sent}"
    );
    assert_eq!(of(&all, 2)[0].result, 0);
}

const IDS: LinkedIds = LinkedIds {
    send: 1,
    shutdown: 2,
    close: 3,
};

#[test]
fn linked_send_shutdown_close_all_succeed() {
    let (mut p, _bufs) = poller(8, 4096);
    let (mut client, server) = tcp_pair();
    let fd = server.into_raw_fd();
    let id = fd_identity(fd);
    p.recv_multishot(fd, GROUP, 9).unwrap();
    reap_until(&mut p, Duration::from_millis(20), |_| false);
    let msg = b"goodbye";
    // SAFETY: `msg` is static data.
    unsafe {
        p.send_shutdown_close(
            fd,
            msg.as_ptr(),
            msg.len() as u32,
            IDS,
            LinkMode::Soft,
            false,
        )
        .unwrap()
    };
    let all = reap_until(&mut p, Duration::from_secs(1), has(3));
    assert_eq!(of(&all, 1)[0].result, msg.len() as i32);
    assert_eq!(of(&all, 2)[0].result, 0);
    assert_eq!(of(&all, 3)[0].result, 0);
    // The armed receive ended with the read side (end of stream), as on the ring.
    assert_eq!(of(&all, 9).last().unwrap().result, 0);
    assert_ne!(fd_identity(fd), id, "closed");
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    assert_eq!(got, msg);
}

#[test]
fn linked_with_skip_success_posts_nothing_when_all_succeed() {
    let (mut p, _bufs) = poller(8, 4096);
    let (_client, server) = tcp_pair();
    let fd = server.into_raw_fd();
    let id = fd_identity(fd);
    let msg = b"x";
    // SAFETY: `msg` is static data.
    unsafe {
        p.send_shutdown_close(fd, msg.as_ptr(), 1, IDS, LinkMode::Hard, true)
            .unwrap()
    };
    assert!(reap_until(&mut p, Duration::from_millis(30), |_| false).is_empty());
    assert_ne!(fd_identity(fd), id, "closed");
}

/// A linked send to a peer that has reset the connection: what each mode reports.
/// Returns the completions, the descriptor and whether it is still the socket it was.
fn linked_after_reset(mode: LinkMode, skip: bool) -> (Vec<Completion>, RawFd, bool) {
    let (mut p, _bufs) = poller(8, 4096);
    let (client, server) = tcp_pair();
    reset(client);
    std::thread::sleep(Duration::from_millis(10));
    let fd = server.into_raw_fd();
    let id = fd_identity(fd);
    let msg = b"too late";
    // SAFETY: `msg` is static data.
    unsafe {
        p.send_shutdown_close(fd, msg.as_ptr(), msg.len() as u32, IDS, mode, skip)
            .unwrap()
    };
    let all = reap_until(&mut p, Duration::from_millis(50), |_| false);
    (all, fd, fd_identity(fd) == id)
}

#[test]
fn a_failed_soft_linked_send_cancels_the_close() {
    let (all, fd, open) = linked_after_reset(LinkMode::Soft, false);
    assert!(of(&all, 1)[0].result < 0, "{all:?}");
    assert_eq!(of(&all, 2)[0].result, ECANCELED);
    assert_eq!(of(&all, 3)[0].result, ECANCELED);
    assert!(open, "the descriptor is still the caller's to close");
    // SAFETY: ours, closed once.
    unsafe { libc::close(fd) };

    let (all, fd, open) = linked_after_reset(LinkMode::Soft, true);
    assert_eq!(all.len(), 1, "only the failed send posts: {all:?}");
    assert!(open);
    // SAFETY: ours, closed once.
    unsafe { libc::close(fd) };
}

#[test]
fn a_failed_hard_linked_send_still_closes() {
    let (all, _, open) = linked_after_reset(LinkMode::Hard, false);
    assert!(of(&all, 1)[0].result < 0, "{all:?}");
    assert_eq!(of(&all, 2).len(), 1);
    assert_eq!(of(&all, 3)[0].result, 0);
    assert!(!open, "closed");

    let (all, _, open) = linked_after_reset(LinkMode::Hard, true);
    assert_eq!(all.len(), 1, "only the failed send posts: {all:?}");
    assert!(!open, "closed");
}

#[test]
fn an_empty_linked_send_just_closes() {
    let (mut p, _bufs) = poller(8, 4096);
    let (mut client, server) = tcp_pair();
    let fd = server.into_raw_fd();
    static NOTHING: [u8; 0] = [];
    // SAFETY: an empty send reads nothing.
    unsafe {
        p.send_shutdown_close(fd, NOTHING.as_ptr(), 0, IDS, LinkMode::Hard, false)
            .unwrap()
    };
    let all = reap_until(&mut p, Duration::from_secs(1), has(3));
    assert_eq!(
        all.iter()
            .map(|c| (c.user_data, c.result))
            .collect::<Vec<_>>(),
        vec![(1, 0), (2, 0), (3, 0)]
    );
    let mut got = Vec::new();
    assert_eq!(client.read_to_end(&mut got).unwrap(), 0);
}

#[test]
fn a_closed_descriptor_number_reused_starts_afresh() {
    let (mut p, mut bufs) = poller(8, 4096);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    p.accept_multishot(l.as_raw_fd(), 100).unwrap();
    let mut c1 = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let all = reap_until(&mut p, Duration::from_secs(1), has(100));
    let fd = all[0].result;
    p.recv_multishot(fd, GROUP, 1).unwrap();
    c1.write_all(b"one").unwrap();
    let all = reap_until(&mut p, Duration::from_secs(1), has(1));
    assert_eq!(take_data(&mut bufs, &all, 1), b"one");
    static NOTHING: [u8; 0] = [];
    // SAFETY: an empty send reads nothing.
    unsafe {
        p.send_shutdown_close(fd, NOTHING.as_ptr(), 0, IDS, LinkMode::Hard, false)
            .unwrap()
    };
    reap_until(&mut p, Duration::from_secs(1), has(3));
    // The next connection most likely gets the same number; it must be read all the same.
    let mut c2 = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let all = reap_until(&mut p, Duration::from_secs(1), has(100));
    let fd2 = all.iter().find(|c| c.user_data == 100).unwrap().result;
    p.recv_multishot(fd2, GROUP, 2).unwrap();
    c2.write_all(b"two").unwrap();
    let all = reap_until(&mut p, Duration::from_secs(1), has(2));
    assert_eq!(take_data(&mut bufs, &all, 2), b"two");
    drop(c1);
}

#[test]
fn the_pool_refuses_a_buffer_claimed_or_recycled_twice() {
    let (mut p, mut bufs) = poller(2, 64);
    assert!(
        matches!(bufs.claim(0), Err(BufError::NotHeld(0))),
        "never posted"
    );
    assert!(matches!(bufs.buffer(0, 1), Err(BufError::NotHeld(0))));
    assert!(matches!(bufs.claim(2), Err(BufError::OutOfRange(2))));
    let (mut client, server) = tcp_pair();
    client.write_all(b"abc").unwrap();
    p.recv_multishot(server.as_raw_fd(), GROUP, 1).unwrap();
    let all = reap_until(&mut p, Duration::from_secs(1), has(1));
    let bid = all[0].buffer_id().unwrap();
    assert!(
        matches!(bufs.buffer(bid, 3), Err(BufError::NotHeld(_))),
        "not claimed yet"
    );
    bufs.claim(bid).unwrap();
    assert!(matches!(bufs.claim(bid), Err(BufError::AlreadyHeld(_))));
    let whole = bufs.buffer(bid, 1000).unwrap();
    assert_eq!(
        (whole.len(), &whole[..3]),
        (64, &b"abc"[..]),
        "at most the buffer size"
    );
    bufs.recycle(bid).unwrap();
    assert!(matches!(bufs.recycle(bid), Err(BufError::NotHeld(_))));
    assert_eq!(bufs.available(), 2);
}

#[test]
fn pool_sizes_are_checked() {
    let mut p = Poller::new().unwrap();
    assert!(matches!(
        BufPool::new(&mut p, 0, 3, 64),
        Err(BufError::InvalidCount(3))
    ));
    assert!(matches!(
        BufPool::new(&mut p, 0, 0, 64),
        Err(BufError::InvalidCount(0))
    ));
    assert!(matches!(
        BufPool::new(&mut p, 0, 4, 0),
        Err(BufError::InvalidSize(0))
    ));
    assert!(p.recv_multishot(0, 1, 1).is_err(), "no pool under group 1");
}

#[test]
fn shutdown_of_the_read_side_ends_a_receive() {
    let (mut p, _bufs) = poller(8, 4096);
    let (_client, server) = tcp_pair();
    p.recv_multishot(server.as_raw_fd(), GROUP, 1).unwrap();
    reap_until(&mut p, Duration::from_millis(20), |_| false);
    p.shutdown(server.as_raw_fd(), Shutdown::Write, 2).unwrap();
    let all = reap_until(&mut p, Duration::from_millis(50), |_| false);
    assert_eq!(all.iter().map(|c| c.user_data).collect::<Vec<_>>(), vec![2]);
    p.shutdown(server.as_raw_fd(), Shutdown::Both, 3).unwrap();
    let all = reap_until(&mut p, Duration::from_secs(1), |a| has(1)(a) && has(3)(a));
    assert_eq!((of(&all, 1)[0].result, of(&all, 1)[0].more()), (0, false));
}
