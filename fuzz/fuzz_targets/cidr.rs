//! IP allow lists (CIDRs and addresses, comma or whitespace separated): parse or
//! refuse, never panic; whatever parses contains the networks it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::limits::{parse_network, AllowList};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let items: Vec<&str> = s.split([',', ' ', '\n']).collect();
    if let Ok(list) = AllowList::parse(&items) {
        for i in items.iter().filter(|i| !i.trim().is_empty()) {
            if let Ok(net) = parse_network(i.trim()) {
                assert!(list.allows(net.network()));
            }
        }
    }
    let _ = parse_network(s);
});
