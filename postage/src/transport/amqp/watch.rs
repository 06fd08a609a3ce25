//! Follows a connection's state: lapin recovers silently, so its status
//! is read at every connection event and every 100 ms, and written to the
//! connection's [`Link`]; a recovery that does not come back while the
//! broker answers is declared stalled.

use std::time::Duration;

use futures_util::StreamExt;

use crate::config::Config;
use crate::transport::Link;

/// How long the broker must keep accepting TCP connections, after the
/// recovery timeout, before a recovery that has not happened is declared
/// stalled: twice the longest pause between lapin's reconnection attempts.
const STALL_GRACE: Duration = Duration::from_secs(10);

/// How often a recovery past its timeout probes the broker.
const STALL_PROBE_EVERY: Duration = Duration::from_secs(1);

/// Does something accept TCP connections at the broker's address?
async fn broker_answers(config: &Config) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect((config.host(), config.port())),
        )
        .await,
        Ok(Ok(_))
    )
}

/// Follows the connection's state: lapin recovers silently, so the state
/// is read at every connection event and every 100 ms. Ends with the
/// connection.
pub(super) async fn follow(
    events: impl futures_util::Stream<Item = lapin::Event>,
    status: lapin::ConnectionStatus,
    link: std::sync::Weak<Link>,
    config: Config,
) {
    let endpoint = config.to_string();
    let mut down_since: Option<tokio::time::Instant> = None;
    // Past the recovery timeout: when the broker was last probed, and since
    // when it has answered without a break.
    let mut probed_at: Option<tokio::time::Instant> = None;
    let mut answering_since: Option<tokio::time::Instant> = None;
    let mut events = std::pin::pin!(events);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(lapin::Event::ConnectionBlocked(reason)) => {
                    tracing::warn!(%endpoint, %reason, "the broker blocked the connection");
                }
                Some(lapin::Event::ConnectionUnblocked) => {
                    tracing::info!(%endpoint, "the broker unblocked the connection");
                }
                Some(_) => {}
                None => break,
            },
            _ = tick.tick() => {}
        }
        let Some(link) = link.upgrade() else { break };
        if status.closed() || status.errored() {
            break;
        }
        let up = status.connected();
        let was_down = link.recovering();
        if link.went_down(up) {
            tracing::warn!(%endpoint, "connection lost; recovering");
            down_since = Some(tokio::time::Instant::now());
        } else if up && was_down {
            link.came_back();
            down_since = None;
            probed_at = None;
            answering_since = None;
            tracing::info!(%endpoint, "connection recovered");
        }
        if let Some(since) = down_since
            && !link.stalled()
            && since.elapsed() > config.recovery_timeout()
            && probed_at.is_none_or(|at| at.elapsed() >= STALL_PROBE_EVERY)
        {
            let now = tokio::time::Instant::now();
            probed_at = Some(now);
            if !broker_answers(&config).await {
                answering_since = None;
            } else if now.duration_since(*answering_since.get_or_insert(now)) >= STALL_GRACE {
                link.stall();
                tracing::error!(
                    %endpoint,
                    down_for = ?since.elapsed(),
                    "connection recovery stalled: the broker answers but the connection has not come back; restart the component"
                );
            }
        }
    }
}
