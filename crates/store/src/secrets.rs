//! The master key and the authenticated encryption (AES-256-GCM) of secrets stored at rest.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use rand::RngCore;

/// Why a secret could not be loaded, sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the master key must be base64 of exactly 32 bytes")]
    BadMasterKey,
    #[error("cannot read or write the master key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("a stored secret cannot be decrypted with this master key")]
    Undecryptable,
}

/// The 32-byte key that encrypts secrets at rest. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    /// Parses a base64-encoded 32-byte key (as given by `INTEGRATOR_MASTER_KEY`).
    pub fn from_base64(text: &str) -> Result<MasterKey, SecretError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| SecretError::BadMasterKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SecretError::BadMasterKey)?;
        Ok(MasterKey(key))
    }

    /// Reads the key file, or creates it (mode 0600) with a fresh random key when missing.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, SecretError> {
        let file_error = |e: std::io::Error| SecretError::KeyFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        match std::fs::read_to_string(path) {
            Ok(text) => MasterKey::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(file_error)?;
                }
                write_private(path, &BASE64.encode(key)).map_err(file_error)?;
                Ok(MasterKey(key))
            }
            Err(e) => Err(file_error(e)),
        }
    }

    /// Encrypts a secret; the output (base64 of nonce + ciphertext) is safe to store.
    pub fn seal(&self, plain: &str) -> String {
        let cipher = Aes256Gcm::new((&self.0).into());
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        // Encryption with a valid key and nonce cannot fail for in-memory buffers.
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        BASE64.encode(out)
    }

    /// Decrypts what [`MasterKey::seal`] produced.
    pub fn open(&self, sealed: &str) -> Result<String, SecretError> {
        let bytes = BASE64
            .decode(sealed)
            .map_err(|_| SecretError::Undecryptable)?;
        if bytes.len() < 12 {
            return Err(SecretError::Undecryptable);
        }
        let (nonce, body) = bytes.split_at(12);
        let cipher = Aes256Gcm::new((&self.0).into());
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), body)
            .map_err(|_| SecretError::Undecryptable)?;
        String::from_utf8(plain).map_err(|_| SecretError::Undecryptable)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key() {
        let dir = std::env::temp_dir().join(format!("mk-{}", uuid::Uuid::new_v4()));
        let path = dir.join("master.key");
        let key = MasterKey::load_or_create(&path).expect("create key");
        let again = MasterKey::load_or_create(&path).expect("reload key");
        let sealed = key.seal("sk-secret");
        assert!(!sealed.contains("sk-secret"));
        assert_eq!(again.open(&sealed).expect("open"), "sk-secret");
        let other = MasterKey([7u8; 32]);
        assert!(other.open(&sealed).is_err());
        assert_eq!(format!("{key:?}"), "MasterKey(***)");
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A secret value kept in memory (a password, a token, a URL with credentials): `Debug`
/// prints `***`; [`Secret::expose`] gives the value to the one place that uses it.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Keeps a value as a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}
