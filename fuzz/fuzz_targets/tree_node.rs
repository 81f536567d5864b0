//! Tree node decoding must never panic, and what it accepts re-encodes to
//! the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shale_core::tree::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(node) = decode(data) {
        assert_eq!(decode(&encode(&node)).ok(), Some(node));
    }
});
