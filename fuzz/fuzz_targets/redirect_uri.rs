//! Redirect URIs as a client registers them: any string is accepted as an absolute
//! URI without a fragment, or refused with a message; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(u) = portcullis_service::clients::check_absolute_uri("redirect_uri", s) {
        assert!(!u.contains('#'));
    }
});
