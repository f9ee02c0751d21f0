//! IPv4 addresses as text without `core::fmt`: `Ipv4Addr`'s `Display` writes each
//! octet through the formatter's padding machinery and grows its string piece by
//! piece, some 1,500 instructions per address, and every token's audit record and
//! every per-address rate-limit key writes one. IPv6 keeps the standard library's
//! text (its zero compression is not worth repeating here).

use std::net::{IpAddr, Ipv4Addr};

/// The dotted-quad text of an IPv4 address, on the stack.
pub(crate) struct V4Text {
    buf: [u8; 15],
    len: usize,
}

impl V4Text {
    pub(crate) fn new(ip: Ipv4Addr) -> Self {
        let mut t = Self {
            buf: [0; 15],
            len: 0,
        };
        for (i, o) in ip.octets().into_iter().enumerate() {
            if i > 0 {
                t.push(b'.');
            }
            if o >= 100 {
                t.push(b'0' + o / 100);
            }
            if o >= 10 {
                t.push(b'0' + o / 10 % 10);
            }
            t.push(b'0' + o % 10);
        }
        t
    }

    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits and dots were written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// `ip.to_string()`, the same text, faster for IPv4.
pub(crate) fn ip_string(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => V4Text::new(v4).as_str().to_owned(),
        IpAddr::V6(v6) => v6.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_edges_of_each_octet_read_as_the_standard_library_writes_them() {
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.9.99.100",
            "127.0.0.1",
            "1.20.199.250",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(ip_string(ip), ip.to_string());
        }
    }

    proptest! {
        #[test]
        fn every_address_reads_as_the_standard_library_writes_it(
            v4 in any::<[u8; 4]>(), v6 in any::<[u16; 8]>()
        ) {
            let a = IpAddr::from(v4);
            prop_assert_eq!(ip_string(a), a.to_string());
            let b = IpAddr::from(v6);
            prop_assert_eq!(ip_string(b), b.to_string());
        }
    }
}
