//! [`Reply`]: the answer to an RPC request, sent once, and what the
//! caller gets when a handler never sends it.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde_json::Value;

use crate::encoding::Encoder;
use crate::error::Result;
use crate::message::{IntoMessage, Message, MessageParts, Outcome, WireFingerprint};
use crate::telemetry::About;
use crate::transport::{Channel, OutgoingProperties};

pub(super) struct ReplyTarget {
    pub(super) channel: Channel,
    pub(super) reply_to: String,
    pub(super) correlation_id: Option<String>,
    pub(super) fingerprint: Arc<WireFingerprint>,
    pub(super) encoder: Arc<dyn Encoder>,
}

impl ReplyTarget {
    async fn publish(self, message: Message) -> Result<()> {
        let body = self
            .encoder
            .encode_with_fingerprint(&message, &self.fingerprint)?;
        self.publish_body(&body, &About::of(&message.kind, &message.name))
            .await
    }

    /// Sends the result saying `outcome`.
    async fn publish_outcome(self, outcome: &Outcome) -> Result<()> {
        let parts = MessageParts::result(outcome);
        let body = self.encoder.encode_parts(&parts, &self.fingerprint)?;
        self.publish_body(&body, &About::of(parts.kind, parts.name))
            .await
    }

    /// Sends a result the processor answers with itself, logging a
    /// failure to send.
    pub(super) async fn answer(self, outcome: Outcome) {
        if let Err(error) = self.publish_outcome(&outcome).await {
            tracing::warn!(error = %error.report(), "could not send RPC reply");
        }
    }

    async fn publish_body(&self, body: &[u8], about: &About<'_>) -> Result<()> {
        let props = OutgoingProperties {
            content_type: Some(self.encoder.content_type()),
            correlation_id: self.correlation_id.as_deref(),
            ..OutgoingProperties::default()
        };
        self.channel
            .publish("", &self.reply_to, body, &props, about)
            .await
    }
}

pub(super) struct ReplySlot {
    pub(super) target: Mutex<Option<ReplyTarget>>,
    pub(super) handler_done: AtomicBool,
    pub(super) command: String,
    /// When the caller stops waiting, if it said.
    pub(super) deadline: Option<Instant>,
}

impl ReplySlot {
    pub(super) fn take(&self) -> Option<ReplyTarget> {
        self.target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// The answer to an RPC request. Send it once; the handler may keep
/// working afterwards. If it is dropped unsent, the caller gets an error
/// result saying so (or an exception result when the handler failed),
/// never a silent timeout.
pub struct Reply {
    pub(super) slot: Arc<ReplySlot>,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("command", &self.slot.command)
            .finish_non_exhaustive()
    }
}

impl Reply {
    /// When the caller stops waiting for this reply, if it said (Postage
    /// callers do; Python Postage callers do not). A handler still running
    /// then is cancelled, and no reply is sent.
    pub fn deadline(&self) -> Option<Instant> {
        self.slot.deadline
    }

    /// Sends `message` (normally a result) to the caller, with the
    /// request's correlation id and this processor's fingerprint.
    pub async fn send(self, message: impl IntoMessage) -> Result<()> {
        match self.slot.take() {
            Some(target) => target.publish(message.into_message()).await,
            None => Ok(()),
        }
    }

    /// Sends the result saying `outcome`, encoded from its parts (no
    /// [`Message`] is built for it).
    pub async fn outcome(self, outcome: Outcome) -> Result<()> {
        match self.slot.take() {
            Some(target) => target.publish_outcome(&outcome).await,
            None => Ok(()),
        }
    }

    /// Sends a success result carrying `value`.
    pub async fn success(self, value: impl Into<Value>) -> Result<()> {
        let value = value.into();
        self.outcome(Outcome::Success {
            value,
            message: String::new(),
        })
        .await
    }

    /// Sends an error result.
    pub async fn error(self, message: impl Into<String>) -> Result<()> {
        let message = message.into();
        self.outcome(Outcome::Error { message }).await
    }

    /// Sends an exception result.
    pub async fn exception(
        self,
        name: impl Into<String>,
        message: impl Into<String>,
    ) -> Result<()> {
        let (name, message) = (name.into(), message.into());
        self.outcome(Outcome::Exception { name, message }).await
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        // While the handler runs, the processor decides what an unsent reply
        // means once the handler ends; after that, the last holder does.
        if !self.slot.handler_done.load(Ordering::Acquire) {
            return;
        }
        if let Some(target) = self.slot.take() {
            let text = format!(
                "the handler of {:?} dropped its reply unsent",
                self.slot.command
            );
            spawn_error_reply(target, text);
        }
    }
}

fn spawn_error_reply(target: ReplyTarget, text: String) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(target.answer(Outcome::Error { message: text }));
    }
}
