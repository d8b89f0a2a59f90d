//! Client keys. Only SHA-256 hashes are ever stored or configured; a presented key is hashed
//! once and looked up by hash, so the plaintext never leaves the request-headers phase.

use crate::config::KeyRouting;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    pub fn of(key: &str) -> KeyHash {
        KeyHash(Sha256::digest(key.as_bytes()).into())
    }

    /// Parse the config form `sha256:<64 hex>`.
    pub fn parse(s: &str) -> Result<KeyHash, String> {
        let hex_part = s
            .strip_prefix("sha256:")
            .ok_or_else(|| format!("key hash '{s}' must start with sha256:"))?;
        let bytes = hex::decode(hex_part)
            .map_err(|_| "key hash must be 64 hex digits after sha256:".to_string())?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "key hash must be 64 hex digits after sha256:".to_string())?;
        Ok(KeyHash(arr))
    }

    /// A public, non-secret identifier for records and listings: the first 6 bytes of the hash.
    pub fn short_id(&self) -> String {
        format!("key_{}", hex::encode(&self.0[..6]))
    }
}

impl fmt::Display for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({})", self.short_id())
    }
}

/// Who is calling: the key's public identity and what it may do.
#[derive(Debug)]
pub struct Principal {
    pub id: String,
    pub name: String,
    /// Token limits and budgets (all off by default).
    pub limits: crate::store::Limits,
    pub allowed_models: Option<Vec<String>>,
    pub routing: Option<KeyRouting>,
}

impl Principal {
    /// A dynamic key from the store, its routing configuration (stored as YAML) validated
    /// against the live catalog.
    pub fn from_store(
        info: crate::store::KeyInfo,
        snap: &crate::config::Snapshot,
    ) -> Result<Principal, Vec<crate::config::ConfigError>> {
        let routing = match &info.routing_yaml {
            Some(yaml) => Some(snap.key_routing_from_yaml(&info.name, yaml)?),
            None => None,
        };
        Ok(Principal {
            id: info.id,
            name: info.name,
            limits: info.limits,
            allowed_models: info.allowed_models,
            routing,
        })
    }

    pub fn may_use(&self, model: &str) -> bool {
        self.allowed_models
            .as_ref()
            .is_none_or(|m| m.iter().any(|a| a == model))
    }
}

/// The key a client presented, from `Authorization: Bearer …` or `x-api-key`.
pub fn presented_key<'a>(
    authorization: Option<&'a str>,
    x_api_key: Option<&'a str>,
) -> Option<&'a str> {
    if let Some(a) = authorization {
        let a = a.trim();
        if a.len() > 7 && a[..7].eq_ignore_ascii_case("bearer ") {
            let k = a[7..].trim();
            if !k.is_empty() {
                return Some(k);
            }
        }
    }
    x_api_key.map(str::trim).filter(|k| !k.is_empty())
}

/// A new random key, `sk-sy-` + 48 hex digits (192 bits).
pub fn mint_key() -> String {
    let mut b = [0u8; 24];
    rand::rng().fill_bytes(&mut b);
    format!("sk-sy-{}", hex::encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_x_api_key() {
        assert_eq!(presented_key(Some("Bearer sk-1"), None), Some("sk-1"));
        assert_eq!(presented_key(Some("bearer   sk-1 "), None), Some("sk-1"));
        assert_eq!(presented_key(None, Some("sk-2")), Some("sk-2"));
        assert_eq!(presented_key(Some("Basic abc"), Some("sk-2")), Some("sk-2"));
        assert_eq!(presented_key(Some("Bearer "), None), None);
        assert_eq!(presented_key(None, None), None);
    }

    #[test]
    fn hash_round_trips_and_rejects_junk() {
        let h = KeyHash::of("sk-test");
        assert_eq!(KeyHash::parse(&h.to_string()).unwrap(), h);
        assert!(KeyHash::parse("sha256:zz").is_err());
        assert!(KeyHash::parse("md5:00").is_err());
        assert!(mint_key().starts_with("sk-sy-"));
    }
}
