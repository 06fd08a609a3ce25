//! Why a content could not be read as what was asked of it.

use std::sync::Arc;

/// Why a message's content could not be read as command parameters
/// ([`Content::parameters_as`](super::Content::parameters_as)) or as a
/// result ([`Message::outcome`](super::Message::outcome)). The message
/// itself was decoded; this is about what it says.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    /// The parameters do not fit the type asked for; the cause says how.
    #[error("the parameters do not fit")]
    Parameters(#[source] Arc<serde_json::Error>),
    /// A result was expected and this is not one.
    #[error("not a result: {0}")]
    NotAResult(String),
    /// A success result's value does not fit the type asked for; the
    /// cause says how.
    #[error("the result's value does not fit")]
    Value(#[source] Arc<serde_json::Error>),
}

impl ContentError {
    pub(crate) fn parameters(error: serde_json::Error) -> Self {
        ContentError::Parameters(Arc::new(error))
    }

    pub(crate) fn value(error: serde_json::Error) -> Self {
        ContentError::Value(Arc::new(error))
    }
}

/// Two errors are equal when they say the same thing.
impl PartialEq for ContentError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ContentError::Parameters(a), ContentError::Parameters(b)) => {
                a.to_string() == b.to_string()
            }
            (ContentError::NotAResult(a), ContentError::NotAResult(b)) => a == b,
            (ContentError::Value(a), ContentError::Value(b)) => a.to_string() == b.to_string(),
            _ => false,
        }
    }
}
