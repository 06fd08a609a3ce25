//! [`Remote`]: asks the components on a broker through the control
//! exchange and gathers every answer that comes within a time limit.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::answers::{Info, Pong};
use super::{CONTROL_EXCHANGE, Destination};
use crate::consumer::{Consumer, Delivery};
use crate::encoding::{Encoder, JsonEncoder};
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::message::{Category, MessageParts, Outcome, WireFingerprint};
use crate::telemetry::About;
use crate::topology::{Exchange, Queue};
use crate::transport::{Channel, Connection, OutgoingProperties, Role};

/// One component's answer to a control command.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Who answered.
    pub sender: Fingerprint,
    /// What it answered: a success (its value is the answer), or an error
    /// (a refused `quit`, say).
    pub outcome: Outcome,
}

impl Answer {
    /// The success value read as `T`; `None` for an error or a value of
    /// another shape.
    pub fn value<T: DeserializeOwned>(&self) -> Option<T> {
        match &self.outcome {
            Outcome::Success { value, .. } => T::deserialize(value).ok(),
            _ => None,
        }
    }
}

/// Sends control commands (`ping`, `info`, `quit`, `restart`) to the
/// components on a broker through [`CONTROL_EXCHANGE`], and gathers their
/// answers: every processor listens there unless its builder says
/// `discoverable(false)` (see [`Processor`](crate::Processor)).
///
/// The answers come to a queue of the client's own, named by the broker;
/// each command waits the time it is given for every answer (there is no
/// knowing how many components will answer).
///
/// ```no_run
/// use std::time::Duration;
/// use postage::prelude::*;
/// use postage::remote::{Destination, Remote};
///
/// # async fn run() -> postage::Result<()> {
/// let connection = Connection::from_env().await?;
/// let mut remote = Remote::connect(&connection, Fingerprint::new("ops", "tool")).await?;
/// for pong in remote.ping(&Destination::all(), Duration::from_secs(1)).await? {
///     println!("{} up {:.0} s", pong.fingerprint, pong.uptime_secs);
/// }
/// for answer in remote.quit(&Destination::new(["echo_receive"]), Duration::from_secs(1)).await? {
///     println!("{}: {:?}", answer.sender, answer.outcome);
/// }
/// # Ok(()) }
/// ```
pub struct Remote {
    channel: Channel,
    replies: Consumer,
    reply_to: String,
    fingerprint: WireFingerprint,
    encoder: Arc<dyn Encoder>,
    /// The connection's user, the `user_id` of every command.
    user: String,
    sent: u64,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("reply_to", &self.reply_to)
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// Declares the control exchange and a reply queue of its own; the
    /// commands carry `fingerprint` (a processor that restricts its
    /// control senders reads its name).
    pub async fn connect(connection: &Connection, fingerprint: Fingerprint) -> Result<Self> {
        let channel = connection.open_channel(Role::Publish, true).await?;
        channel.declare_exchange(&CONTROL_EXCHANGE).await?;
        let replies = Consumer::builder()
            .bind(Exchange::direct(""), [(Queue::server_named(), "")])
            .name("postage-remote")
            .connect(connection)
            .await?;
        let reply_to = replies
            .handle()
            .queues()
            .into_iter()
            .next()
            .ok_or(Error::ConsumerStopped)?;
        Ok(Remote {
            channel,
            replies,
            reply_to,
            fingerprint: WireFingerprint::from(&fingerprint),
            encoder: Arc::new(JsonEncoder),
            user: connection.config().user().to_owned(),
            sent: 0,
        })
    }

    /// Sends `command` to the components `destination` selects and gives
    /// every answer that arrives within `wait`.
    pub async fn ask(
        &mut self,
        command: &str,
        destination: &Destination,
        wait: Duration,
    ) -> Result<Vec<Answer>> {
        self.sent += 1;
        let correlation_id = format!("postage-remote.{}.{}", std::process::id(), self.sent);
        let parameters = serde_json::json!({ "destination": destination.selectors() });
        let parts = MessageParts::command(command, Category::Rpc, &parameters);
        let body = self.encoder.encode_parts(&parts, &self.fingerprint)?;
        let props = OutgoingProperties {
            content_type: Some(self.encoder.content_type()),
            reply_to: Some(&self.reply_to),
            correlation_id: Some(&correlation_id),
            user_id: Some(&self.user),
            ..OutgoingProperties::default()
        };
        let about = About {
            kind: "command",
            name: command,
            category: "rpc",
        };
        self.channel
            .publish(CONTROL_EXCHANGE.name(), "", &body, &props, &about)
            .await?;
        let deadline = tokio::time::Instant::now() + wait;
        let mut answers = Vec::new();
        while let Ok(Some(delivery)) = tokio::time::timeout_at(deadline, self.replies.next()).await
        {
            if let Some(answer) = answer_to(&delivery, &correlation_id) {
                answers.push(answer);
            }
            if let Err(error) = delivery.ack().await {
                tracing::debug!(error = %error.report(), "could not acknowledge an answer");
            }
        }
        Ok(answers)
    }

    /// `ping`: who is there, for how long.
    pub async fn ping(&mut self, destination: &Destination, wait: Duration) -> Result<Vec<Pong>> {
        let answers = self.ask(super::PING, destination, wait).await?;
        Ok(answers.iter().filter_map(Answer::value).collect())
    }

    /// `info`: handlers, bindings, tallies and health of each component.
    pub async fn info(&mut self, destination: &Destination, wait: Duration) -> Result<Vec<Info>> {
        let answers = self.ask(super::INFO, destination, wait).await?;
        Ok(answers.iter().filter_map(Answer::value).collect())
    }

    /// `quit`: each selected component answers, then stops (or refuses
    /// with an error).
    pub async fn quit(&mut self, destination: &Destination, wait: Duration) -> Result<Vec<Answer>> {
        self.ask(super::QUIT, destination, wait).await
    }

    /// `restart`: each selected component answers, then restarts in place
    /// (or refuses with an error).
    pub async fn restart(
        &mut self,
        destination: &Destination,
        wait: Duration,
    ) -> Result<Vec<Answer>> {
        self.ask(super::RESTART, destination, wait).await
    }

    /// `pause`: each selected processor cancels its broker consumers and
    /// answers once nothing new arrives (the work in flight finishes);
    /// `"done": false` in the answer's value when it was paused already.
    pub async fn pause(
        &mut self,
        destination: &Destination,
        wait: Duration,
    ) -> Result<Vec<Answer>> {
        self.ask(super::PAUSE, destination, wait).await
    }

    /// `resume`: each selected processor consumes its queues again;
    /// `"done": false` when it was not paused.
    pub async fn resume(
        &mut self,
        destination: &Destination,
        wait: Duration,
    ) -> Result<Vec<Answer>> {
        self.ask(super::RESUME, destination, wait).await
    }

    /// Stops listening for answers and closes the channels.
    pub async fn close(self) {
        self.replies.close().await;
        self.channel.close().await;
    }
}

/// The answer a delivery carries, if it answers the command sent with
/// `correlation_id`.
fn answer_to(delivery: &Delivery, correlation_id: &str) -> Option<Answer> {
    if delivery.correlation_id() != Some(correlation_id) {
        return None;
    }
    let message = delivery.message().ok()?;
    let outcome = message.outcome().ok()?;
    Some(Answer {
        sender: message.sender(),
        outcome,
    })
}
