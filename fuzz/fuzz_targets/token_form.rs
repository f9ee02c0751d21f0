//! The token endpoint's form body (application/x-www-form-urlencoded): any bytes
//! parse or fail with an OAuth error, never panic; repeated parameters are refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_server::extract::OAuthForm;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut form) = OAuthForm::parse(data) {
        let _ = form.require("grant_type");
        let _ = form.get("scope");
        let _ = form.resources();
        let _ = form.take("refresh_token");
        let _ = form.to_query();
    }
});
