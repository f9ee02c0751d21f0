//! The configuration file: any TOML text loads into valid settings or is refused
//! with a message naming the problem; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_server::Settings;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(s) = Settings::from_toml_str(text) {
        assert!(s.validate().is_ok());
    }
});
