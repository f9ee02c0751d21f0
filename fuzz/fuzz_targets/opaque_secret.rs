//! Opaque token / API key format and checksum: parsing any string never panics,
//! and whatever parses re-encodes to itself (so the checksum covered all of it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::secret::OpaqueSecret;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(secret) = OpaqueSecret::parse_any(s) {
        assert_eq!(secret.expose(), s);
    }
    for prefix in ["pcat", "pcs", "pcrt", "pcpat", "pcac"] {
        if let Ok(secret) = OpaqueSecret::parse(s, prefix) {
            assert_eq!(secret.expose(), s);
            assert!(s.starts_with(prefix));
        }
    }
});
