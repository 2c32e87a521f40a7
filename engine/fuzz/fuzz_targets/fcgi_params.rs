//! Pushes arbitrary chunks into `Params` under an arbitrary limit, as PARAMS records would
//! deliver them: never a panic, never more stored than the limit, every pair inside the buffer.

#![no_main]

use proto::fcgi::{Params, ParamsError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u32, Vec<Vec<u8>>)| {
    let (limit, chunks) = input;
    let limit = if limit == u32::MAX {
        usize::MAX
    } else {
        limit as usize % (1 << 20)
    };
    let mut params = Params::new();
    let mut pushed = 0usize;
    for chunk in &chunks {
        let result = params.push(chunk, limit);
        pushed += chunk.len();
        assert!(params.byte_len() <= pushed && params.byte_len() <= limit);
        if let Err(ParamsError::TooLarge { limit: l }) = result {
            assert_eq!(l, limit);
        }
        let stored: usize = params.iter().map(|(n, v)| n.len() + v.len()).sum();
        assert!(stored <= params.byte_len());
        if let Some((name, _)) = params.iter().last() {
            assert!(params.get(name).is_some());
        }
    }
    let _ = params.push(&[], limit);
});
