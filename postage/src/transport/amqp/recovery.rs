//! Recovery: a lost connection is replaced by a new one to the first
//! address that answers, what was declared is declared again, and every
//! channel is opened again with its prefetch and consumers, before sends
//! and consumers resume. A recovery that cannot finish while a broker
//! answers is reported stalled.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::convert::amqp_error;
use super::session::Shared;
use super::{connect, declare};
use crate::error::Result;

/// The first pause between two attempts; it doubles up to `MAX_DELAY`.
const MIN_DELAY: Duration = Duration::from_millis(200);

/// The longest pause between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(5);

/// How long a broker must keep accepting TCP connections, after the
/// recovery timeout, before a recovery that has not finished is declared
/// stalled.
const STALL_GRACE: Duration = Duration::from_secs(10);

/// How often the task looks at the connection when nothing woke it.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The recovery task of a connection: ends when the connection is closed
/// or every handle on it is gone.
pub(super) async fn run(shared: Weak<Shared>, lost: Arc<Notify>) {
    loop {
        // No strong reference while waiting: dropping the connection's
        // last handle ends the task.
        let _ = tokio::time::timeout(LOOK_EVERY, lost.notified()).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.closed() {
            return;
        }
        if !shared.is_up() {
            recover(&shared).await;
        }
    }
}

/// Replaces the lost connection, trying until it works or the connection
/// is closed.
async fn recover(shared: &Arc<Shared>) {
    let link = &shared.link;
    let config = &shared.config;
    let from = shared.state().endpoint.clone();
    link.went_down(false);
    tracing::warn!(endpoint = %from, "connection lost; recovering");
    let down_since = Instant::now();
    let mut answering_since: Option<Instant> = None;
    let mut delay = MIN_DELAY;
    loop {
        if shared.closed() {
            return;
        }
        if connect::any_answers(config).await {
            answering_since.get_or_insert_with(Instant::now);
        } else {
            answering_since = None;
        }
        let stall = || {
            if !link.stalled()
                && down_since.elapsed() > config.recovery_timeout()
                && answering_since.is_some_and(|since| since.elapsed() >= STALL_GRACE)
            {
                link.stall();
                tracing::error!(
                    down_for = ?down_since.elapsed(),
                    "connection recovery stalled: a broker answers but the connection has not come back; restart the component"
                );
            }
        };
        stall();
        let mut attempt = std::pin::pin!(attempt(shared, &from));
        let outcome = loop {
            tokio::select! {
                outcome = &mut attempt => break outcome,
                () = tokio::time::sleep(LOOK_EVERY) => stall(),
            }
        };
        match outcome {
            Ok(endpoint) => {
                link.went_down(true);
                link.came_back();
                tracing::info!(
                    %endpoint,
                    down_for = ?down_since.elapsed(),
                    "connection recovered"
                );
                return;
            }
            Err(error) => {
                tracing::debug!(error = %error.report(), "recovery attempt failed");
            }
        }
        tokio::time::sleep(jitter(delay)).await;
        delay = (delay * 2).min(MAX_DELAY);
    }
}

/// A pause of `delay`, give or take a quarter, so that the components
/// of a cluster do not all come back at once.
fn jitter(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let quarter = delay / 4;
    let offset = quarter.mul_f64(f64::from(nanos % 1000) / 500.0);
    delay - quarter + offset
}

/// One attempt: connects (to the address the connection was lost on
/// last), declares the record again, opens the channels again, and makes
/// the new connection the current one. Gives the address reached.
async fn attempt(shared: &Arc<Shared>, lost_on: &str) -> Result<String> {
    let (lapin, endpoint) = connect::open(&shared.config, connect::Prefer::Last(lost_on)).await?;
    let lapin = Arc::new(lapin);
    let renames = redeclare(shared, &lapin).await?;
    let epoch = shared.next_generation();
    let channels: Vec<_> = {
        let mut state = shared.state();
        state.channels.retain(|channel| channel.strong_count() > 0);
        state.channels.iter().filter_map(Weak::upgrade).collect()
    };
    for channel in channels {
        if channel.is_closed() {
            continue;
        }
        channel
            .reopen_on(&lapin, epoch, &renames)
            .await
            .map_err(|e| amqp_error("channel.open (recovery)", e))?;
    }
    shared.replace(lapin.clone(), &endpoint, epoch);
    shared.watch(&lapin);
    Ok(endpoint)
}

/// Declares what the record holds on the new connection: exchanges,
/// queues, bindings. A server-named queue gets a new name: the record, its
/// bindings and its consumers follow it (the renames are given back).
async fn redeclare(shared: &Shared, lapin: &lapin::Connection) -> Result<Vec<(String, String)>> {
    let (exchanges, queues, bindings) = {
        let state = shared.state();
        (
            state.record.exchanges(),
            state.record.queues(),
            state.record.bindings(),
        )
    };
    let channel = lapin
        .create_channel()
        .await
        .map_err(|e| amqp_error("channel.open (recovery)", e))?;
    for exchange in &exchanges {
        declare::exchange(&channel, exchange).await.map_err(|e| {
            amqp_error(
                format!("exchange.declare {:?} (recovery)", exchange.name()),
                e,
            )
        })?;
    }
    let mut renames = Vec::new();
    for queue in &queues {
        let server_named = queue.declaration.name().is_empty();
        let name = if server_named {
            ""
        } else {
            queue.name.as_str()
        };
        let got = declare::queue(&channel, &queue.declaration, name)
            .await
            .map(|declared| declared.name)
            .map_err(|e| amqp_error(format!("queue.declare {:?} (recovery)", queue.name), e))?;
        if got != queue.name {
            renames.push((queue.name.clone(), got));
        }
    }
    for binding in &bindings {
        let queue = renames
            .iter()
            .find(|(old, _)| !binding.to_exchange && *old == binding.destination)
            .map_or(binding.destination.as_str(), |(_, new)| new.as_str());
        declare::bind(
            &channel,
            queue,
            binding.to_exchange,
            &binding.exchange,
            &binding.key,
            &binding.arguments,
        )
        .await
        .map_err(|e| {
            amqp_error(
                format!(
                    "queue.bind {queue:?} to {:?} with key {:?} (recovery)",
                    binding.exchange, binding.key
                ),
                e,
            )
        })?;
    }
    if let Err(error) = channel.close(200, "OK".into()).await {
        tracing::debug!(%error, "closing the recovery channel");
    }
    {
        let mut state = shared.state();
        for (old, new) in &renames {
            state.record.renamed(old, new);
        }
    }
    tracing::debug!(
        exchanges = exchanges.len(),
        queues = queues.len(),
        bindings = bindings.len(),
        renamed = renames.len(),
        "topology declared again"
    );
    Ok(renames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_stay_within_a_quarter_of_the_delay() {
        for _ in 0..100 {
            let pause = jitter(Duration::from_secs(4));
            assert!(
                pause >= Duration::from_secs(3) && pause <= Duration::from_secs(5),
                "{pause:?}"
            );
        }
    }
}
