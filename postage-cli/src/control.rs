//! `postage ping`, `ps`, `quit` and `restart`: the control exchange, or
//! for `quit` / `restart` the classic way.

use postage::remote::{Destination, Info, Remote};
use postage::{Connection, Outcome};

use crate::args::{PauseArgs, QueryArgs, SendArgs, StopArgs, Target};
use crate::failure::Failure;
use crate::output;

/// The command line's client of the control exchange.
async fn remote(url: Option<&str>) -> Result<(Connection, Remote), Failure> {
    let connection = output::connect(url).await?;
    let remote = Remote::connect(&connection, output::fingerprint()).await?;
    Ok((connection, remote))
}

async fn close(connection: Connection, remote: Remote) {
    remote.close().await;
    let _ = connection.close().await;
}

/// Nobody answered: status 1, saying whom we asked.
pub(crate) fn nobody(destination: &Destination) -> Failure {
    if destination.is_all() {
        Failure::refused("no component answered")
    } else {
        Failure::refused(format!("no component answered as {destination}"))
    }
}

/// The `info` answers of the components `destination` selects.
pub(crate) async fn infos(
    url: Option<&str>,
    destination: &Destination,
    wait: std::time::Duration,
) -> Result<Vec<Info>, Failure> {
    let (connection, mut remote) = remote(url).await?;
    let infos = remote.info(destination, wait).await;
    close(connection, remote).await;
    Ok(infos?)
}

/// One line per component that answers; nobody is a failure.
pub(crate) async fn ping(url: Option<&str>, args: QueryArgs) -> Result<(), Failure> {
    let destination = Destination::new(args.destination);
    let (connection, mut remote) = remote(url).await?;
    let pongs = remote.ping(&destination, args.wait.timeout).await;
    close(connection, remote).await;
    let pongs = pongs?;
    for pong in &pongs {
        if args.json {
            println!("{}", output::json_text(pong, true));
        } else {
            println!(
                "pong: {} up {} (postage {})",
                output::who(&pong.fingerprint),
                output::uptime(pong.uptime_secs),
                pong.postage
            );
        }
    }
    if pongs.is_empty() {
        return Err(nobody(&destination));
    }
    Ok(())
}

/// A table of the components that answer `info`, or their answers as a
/// JSON array.
pub(crate) async fn ps(url: Option<&str>, args: QueryArgs) -> Result<(), Failure> {
    let destination = Destination::new(args.destination);
    let mut infos = infos(url, &destination, args.wait.timeout).await?;
    infos.sort_by(|a, b| {
        (&a.fingerprint.name, a.fingerprint.pid).cmp(&(&b.fingerprint.name, b.fingerprint.pid))
    });
    if args.json {
        println!("{}", output::json_text(&infos, false));
    } else {
        print!("{}", table(&infos));
    }
    if infos.is_empty() && !destination.is_all() {
        return Err(nobody(&destination));
    }
    Ok(())
}

/// A processor's periodic jobs and when each runs next, with no spaces
/// (`-` for none): `sweep:42.0s,nightly:3h2m`, prefixed `standby/` in a
/// process that does not run them.
fn jobs(info: &Info) -> String {
    if info.jobs.is_empty() {
        return "-".into();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64());
    let jobs: Vec<String> = info
        .jobs
        .iter()
        .map(|job| match job.next_run {
            Some(at) => format!("{}:{}", job.name, output::uptime((at - now).max(0.0))),
            None => format!("{}:never", job.name),
        })
        .collect();
    let standby = if info.jobs.iter().any(|job| job.runner) {
        ""
    } else {
        "standby/"
    };
    format!("{standby}{}", jobs.join(","))
}

/// The partitions a worker of a partition group holds now, with no
/// spaces (`-` for none): `orders:p00,p04`. They are the queues it
/// consumes beyond its bindings'.
fn partitions(info: &Info) -> String {
    let held: Vec<&str> = info
        .queues
        .iter()
        .filter(|queue| !info.bindings.iter().any(|b| b.queue == **queue))
        .map(String::as_str)
        .collect();
    let Some(group) = held
        .first()
        .and_then(|queue| queue.rsplit_once('.'))
        .map(|(g, _)| g)
    else {
        return "-".into();
    };
    let names: Vec<&str> = held
        .iter()
        .map(|queue| {
            queue
                .strip_prefix(group)
                .and_then(|rest| rest.strip_prefix('.'))
                .unwrap_or(queue)
        })
        .collect();
    format!("{group}:{}", names.join(","))
}

/// The `ps` table: one row per component.
fn table(infos: &[Info]) -> String {
    let header = [
        "NAME",
        "TYPE",
        "PID",
        "HOST",
        "UPTIME",
        "RECEIVED",
        "HANDLED",
        "FAILED",
        "REJECTED",
        "UNHANDLED",
        "HEALTH",
        "PARTITIONS",
        "JOBS",
        "HANDLERS",
    ];
    let rows: Vec<Vec<String>> = infos
        .iter()
        .map(|info| {
            let fp = &info.fingerprint;
            let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
            let handlers: Vec<String> = info
                .handlers
                .iter()
                .map(|h| format!("{}:{}", h.category, h.name))
                .collect();
            let c = &info.counters;
            vec![
                or_unknown(&fp.name),
                or_unknown(&fp.kind),
                fp.pid.map_or_else(|| "?".into(), |p| p.to_string()),
                or_unknown(&fp.host),
                output::uptime(info.uptime_secs),
                c.received.to_string(),
                c.handled.to_string(),
                c.failed.to_string(),
                c.rejected.to_string(),
                c.unhandled.to_string(),
                info.health.clone(),
                partitions(info),
                jobs(info),
                handlers.join(","),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|row| row[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// `quit` or `restart`: through the control exchange to the components
/// the destination selects (each answer printed; a refusal or nobody is
/// a failure), or as a plain command to `--exchange` / `--key`.
pub(crate) async fn stop(url: Option<&str>, command: &str, args: StopArgs) -> Result<(), Failure> {
    if let (Some(exchange), Some(key)) = (&args.exchange, &args.key) {
        return classic(url, command, exchange, key).await;
    }
    command_each(url, command, args.destination, args.wait.timeout, |_| {
        format!("{command}: ")
    })
    .await
}

/// `pause` or `resume`, to processors through the control exchange;
/// says which changed and which were so already.
pub(crate) async fn pause(
    url: Option<&str>,
    command: &str,
    args: PauseArgs,
) -> Result<(), Failure> {
    let state = if command == postage::remote::PAUSE {
        "paused"
    } else {
        "consuming"
    };
    command_each(
        url,
        command,
        args.destination,
        args.wait.timeout,
        |value| match value.get("done").and_then(serde_json::Value::as_bool) {
            Some(false) => format!("{state} already: "),
            _ => format!("{command}: "),
        },
    )
    .await
}

/// Sends `command` to the components `destination` names and prints each
/// answer (`said` words a success from its value); fails when nobody
/// answered or someone refused.
async fn command_each(
    url: Option<&str>,
    command: &str,
    destination: Vec<String>,
    wait: std::time::Duration,
    said: impl Fn(&serde_json::Value) -> String,
) -> Result<(), Failure> {
    let destination = Destination::new(destination);
    let (connection, mut remote) = remote(url).await?;
    let answers = remote.ask(command, &destination, wait).await;
    close(connection, remote).await;
    let answers = answers?;
    let mut refused = Vec::new();
    for answer in &answers {
        let who = output::who(&answer.sender);
        match &answer.outcome {
            Outcome::Success { value, .. } => println!("{}{who}", said(value)),
            Outcome::Error { message } | Outcome::Exception { message, .. } => {
                println!("refused: {who}: {message}");
                refused.push(who);
            }
        }
    }
    if answers.is_empty() {
        return Err(nobody(&destination));
    }
    if !refused.is_empty() {
        return Err(Failure::refused(format!(
            "{command} refused by {}",
            refused.join(", ")
        )));
    }
    Ok(())
}

/// The command as Python Postage sends it: a plain `command` message to
/// an exchange (which must exist) with a key.
async fn classic(
    url: Option<&str>,
    command: &str,
    exchange: &str,
    key: &str,
) -> Result<(), Failure> {
    let target = Target {
        exchange: exchange.to_owned(),
        key: key.to_owned(),
        command: command.to_owned(),
        params: None,
        exchange_type: None,
    };
    let args = SendArgs {
        target,
        count: 1,
        persistent: false,
        confirm: false,
    };
    crate::send::send(url, args).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(queues: &[&str]) -> Info {
        serde_json::from_value(serde_json::json!({
            "fingerprint": {},
            "uptime_secs": 1.0,
            "bindings": [{
                "exchange": "ledger-in",
                "exchange_type": "direct",
                "queue": "ledger-in",
                "key": "post",
            }],
            "queues": queues,
        }))
        .unwrap_or_else(|e| panic!("an info answer: {e}"))
    }

    #[test]
    fn partitions_are_the_queues_beyond_the_bindings() {
        assert_eq!(partitions(&info(&["ledger-in"])), "-");
        assert_eq!(
            partitions(&info(&["ledger-in", "ledger.p00", "ledger.p04"])),
            "ledger:p00,p04"
        );
        assert_eq!(partitions(&info(&[])), "-");
    }
}
