//! API key secrets: generation, hashing and constant-time comparison.

use sha2::{Digest, Sha256};

/// Characters of the secret kept in clear as the key's public id.
pub const ID_LEN: usize = 8;

/// A new random secret in Braze's key format (a UUID-shaped string of 122 random bits).
pub fn generate_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string())
}

/// The public id of a secret: its first [`ID_LEN`] characters (or all of a short one).
pub fn public_id(secret: &str) -> &str {
    let end = secret
        .char_indices()
        .nth(ID_LEN)
        .map(|(i, _)| i)
        .unwrap_or(secret.len());
    &secret[..end]
}

/// SHA-256 of a secret, the only form in which it is stored.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Compares two hashes in time independent of where they differ.
pub fn hashes_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_unique_uuids_and_hash_stably() {
        let a = generate_secret().unwrap();
        let b = generate_secret().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(public_id(&a), &a[..8]);
        assert!(hashes_equal(&hash_secret(&a), &hash_secret(&a)));
        assert!(!hashes_equal(&hash_secret(&a), &hash_secret(&b)));
    }
}
