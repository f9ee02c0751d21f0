//! Scopes: any string parses to a scope set that prints back to an equal set, or
//! is refused; subset checks agree with membership.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::scope::ScopeSet;

fuzz_target!(|data: &[u8]| {
    let (a, b) = data.split_at(data.len() / 2);
    let (Ok(a), Ok(b)) = (std::str::from_utf8(a), std::str::from_utf8(b)) else {
        return;
    };
    if let (Ok(x), Ok(y)) = (ScopeSet::parse(a), ScopeSet::parse(b)) {
        let again = ScopeSet::parse(&x.to_string()).expect("a printed set parses");
        assert_eq!(again, x);
        assert_eq!(x.is_subset(&y), x.iter().all(|t| y.contains(t.as_str())));
    }
});
