//! Decodes arbitrary bytes as a FastCGI record stream, twice: all at once, and fed in two pieces
//! through a buffer as a connection driver would. Both must agree, never panic, and never claim
//! more input than they were given; name-value contents are walked with `NvIter` too.

#![no_main]

use proto::fcgi::{decode_record, rtype, Decode, NvIter, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

/// What the decoder reported for one record, or how the stream ended.
#[derive(Debug, PartialEq)]
enum Event {
    Record {
        rtype: u8,
        request_id: u16,
        content: Vec<u8>,
        used: usize,
    },
    Error(String),
}

fn walk_pairs(content: &[u8]) {
    let mut seen = 0usize;
    for pair in NvIter::new(content) {
        let Ok((name, value)) = pair else { break };
        seen += name.len() + value.len();
        assert!(seen <= content.len());
    }
}

/// Decodes every complete record at the front of `buf`; returns the bytes used.
fn drain(buf: &[u8], events: &mut Vec<Event>) -> Option<usize> {
    let mut pos = 0;
    loop {
        match decode_record(&buf[pos..]) {
            Ok(Decode::Complete(rec, used)) => {
                assert!(used >= HEADER_LEN && used <= buf.len() - pos);
                assert_eq!(used, rec.header.record_len());
                if matches!(
                    rec.header.rtype,
                    rtype::PARAMS | rtype::GET_VALUES | rtype::GET_VALUES_RESULT
                ) {
                    walk_pairs(rec.content);
                }
                events.push(Event::Record {
                    rtype: rec.header.rtype,
                    request_id: rec.header.request_id,
                    content: rec.content.to_vec(),
                    used,
                });
                pos += used;
            }
            Ok(Decode::Partial) => return Some(pos),
            Err(e) => {
                events.push(Event::Error(e.to_string()));
                return None;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let mut whole = Vec::new();
    drain(data, &mut whole);

    let split = usize::from(split) * data.len() / 255;
    let mut streamed = Vec::new();
    let mut buf = Vec::new();
    for piece in [&data[..split], &data[split..]] {
        buf.extend_from_slice(piece);
        match drain(&buf, &mut streamed) {
            Some(used) => {
                buf.drain(..used);
            }
            None => break,
        }
    }
    assert_eq!(whole, streamed);
});
