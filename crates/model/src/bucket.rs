//! The `random_bucket` every user holds: 0–9999, fixed for life, reproducible anywhere.

use sha2::{Digest, Sha256};

/// Number of distinct buckets.
pub const BUCKETS: u64 = 10_000;

/// The bucket of a user named by `identity` (its `external_id`, or
/// `alias_label + ":" + alias_name` for an alias user): the first 8 bytes of
/// SHA-256 of the UTF-8 text, big-endian, modulo 10000.
pub fn random_bucket(identity: &str) -> u16 {
    let digest = Sha256::digest(identity.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % BUCKETS) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_follows_the_sha256_rule() {
        // sha256("user-1") = c6c289e49e9c05b2145860387b73bcb18df43fb09a1e4a4a9713c76c88bb541b
        let expected = (0xc6c2_89e4_9e9c_05b2u64 % 10_000) as u16;
        assert_eq!(random_bucket("user-1"), expected);
        assert_eq!(expected, 2594);
    }
}
