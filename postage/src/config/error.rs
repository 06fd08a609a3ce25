//! [`ConfigError`]: a refused configuration value, named.

/// Why a configuration value was refused. Names the variable (or URL part)
/// at fault; never contains a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {source_name}: {reason}")]
pub struct ConfigError {
    source_name: String,
    reason: String,
}

impl ConfigError {
    pub(super) fn new(source_name: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            source_name: source_name.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn tls_ca(path: &std::path::Path, error: &std::io::Error) -> Self {
        ConfigError::new(
            "POSTAGE_TLS_CA_FILE",
            format!("cannot read {}: {error}", path.display()),
        )
    }

    /// The variable (or URL part) whose value was refused.
    pub fn variable(&self) -> &str {
        &self.source_name
    }
}
