//! Pack parsing must never panic, and every entry it returns lies inside
//! the pack.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shale_core::store::pack::parse;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = parse(data) {
        for e in entries {
            assert!(e.offset as usize + e.stored_len as usize <= data.len());
        }
    }
});
