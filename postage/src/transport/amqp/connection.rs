//! A connection to RabbitMQ as Postage keeps it: two sessions (AMQP
//! connections), one for consumers and one for publishers.
//!
//! Under a memory or disk alarm RabbitMQ stops reading from every
//! connection that publishes, and then reads nothing from it at all:
//! acknowledgements and declarations wait with the publishes. Kept apart,
//! consumers go on consuming and acknowledging while publishers wait (as
//! the RabbitMQ documentation advises, and as Spring AMQP does).

use std::sync::Arc;

use super::Channel;
use super::session::Session;
use crate::config::Config;
use crate::error::Result;
use crate::transport::{Link, Role};

/// The two sessions of a connection.
pub(crate) struct Connection {
    consume: Session,
    publish: Session,
}

impl Connection {
    /// Opens the consuming session on the first address that answers,
    /// then the publishing one, on the same address when it answers.
    pub(crate) async fn open(
        config: &Config,
        consume: &Arc<Link>,
        publish: &Arc<Link>,
    ) -> Result<Self> {
        let consuming = Session::open(config, consume, None).await?;
        let publishing_config = config
            .clone()
            .with_connection_name(format!("{} (publishing)", config.client_name()));
        let endpoint = consuming.endpoint();
        let publishing = match Session::open(&publishing_config, publish, Some(&endpoint)).await {
            Ok(publishing) => publishing,
            Err(error) => {
                let _ = consuming.close().await;
                return Err(error);
            }
        };
        Ok(Connection {
            consume: consuming,
            publish: publishing,
        })
    }

    fn session(&self, role: Role) -> &Session {
        match role {
            Role::Consume => &self.consume,
            Role::Publish => &self.publish,
        }
    }

    /// Are both sessions up (not closed, not being recovered)?
    pub(crate) fn is_connected(&self) -> bool {
        self.consume.is_connected() && self.publish.is_connected()
    }

    /// The address the consuming session is on now, `host:port`.
    pub(crate) fn endpoint(&self) -> String {
        self.consume.endpoint()
    }

    /// Closes both sessions, each within its time limit.
    pub(crate) async fn close(&self) -> Result<()> {
        let (consume, publish) = tokio::join!(self.consume.close(), self.publish.close());
        consume.and(publish)
    }

    /// Opens a channel on the session for `role`.
    pub(crate) async fn open_channel(&self, role: Role, confirms: bool) -> Result<Channel> {
        self.session(role).open_channel(confirms).await
    }
}
