//! Names, `VOLUME@SNAPSHOT` specs, in-volume paths and sizes typed by users.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shale_core::names::Spec;
use shale_core::size::parse_size;
use shale_core::tree::split_path;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(spec) = Spec::parse(s) {
            assert_eq!(Spec::parse(&spec.to_string()).ok(), Some(spec));
        }
        let _ = parse_size(s);
        if let Ok(parts) = split_path(s) {
            assert!(parts.iter().all(|p| p.as_slice() != b".." && !p.is_empty()));
        }
    }
});
