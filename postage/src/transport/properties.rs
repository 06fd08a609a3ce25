//! The properties of a published message.

/// Properties of a published message, borrowed for the publish.
#[derive(Debug, Clone, Default)]
pub(crate) struct OutgoingProperties<'a> {
    pub(crate) content_type: Option<&'a str>,
    pub(crate) persistent: bool,
    pub(crate) mandatory: bool,
    pub(crate) reply_to: Option<&'a str>,
    pub(crate) correlation_id: Option<&'a str>,
    pub(crate) expiration_ms: Option<u128>,
}
