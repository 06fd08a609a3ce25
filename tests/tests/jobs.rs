//! Periodic jobs across processes: one runner, the others standing by;
//! the runner killed (`kill -9`), another takes over; no tick run twice,
//! no gap longer than the interval + 10 s.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stderr)]

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postage::prelude::*;
use postage::remote::{Destination, Remote};
use postage_tests::{Spawned, connect, unique};

fn start(name: &str) -> Spawned {
    let mut command = Command::new(env!("CARGO_BIN_EXE_test_jobs"));
    command.arg(name);
    let process = Spawned::start(command);
    process.expect_line("ready");
    process
}

/// The seconds of the `tick` lines among `lines`.
fn ticks(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|line| line.strip_prefix("tick "))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_runs_the_jobs_and_another_takes_over_when_it_is_killed() {
    let name = unique("jobs");
    let mut first = start(&name);
    let mut seen_first = Vec::new();
    first.read_until(&mut seen_first, "3 ticks", |lines| ticks(lines).len() >= 3);
    let second = start(&name);
    first.read_until(&mut seen_first, "2 more ticks", |lines| {
        ticks(lines).len() >= 5
    });

    // One runner, one standing by, both knowing the next run.
    let connection = connect().await;
    let mut remote = Remote::connect(&connection, Fingerprint::new("ops", "tool"))
        .await
        .unwrap();
    let infos = remote
        .info(&Destination::new([name.as_str()]), Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(infos.len(), 2, "{infos:?}");
    let runners: Vec<bool> = infos.iter().map(|info| info.jobs[0].runner).collect();
    assert_eq!(
        runners.iter().filter(|&&runner| runner).count(),
        1,
        "{infos:?}"
    );
    assert!(
        infos.iter().all(|info| info.jobs[0].next_run.is_some()),
        "{infos:?}"
    );
    let runner = infos.iter().find(|info| info.jobs[0].runner).unwrap();
    assert_eq!(runner.fingerprint.pid, Some(first.pid()));

    let killed = now_secs();
    seen_first.extend(first.kill());
    let mut seen_second = Vec::new();
    second.read_until(&mut seen_second, "3 ticks after the kill", |lines| {
        ticks(lines).iter().filter(|&&tick| tick > killed).count() >= 3
    });
    let from_first = ticks(&seen_first);
    let from_second = ticks(&seen_second);
    eprintln!(
        "jobs: first process ticked {from_first:?}, killed at {killed}; the second ticked {from_second:?}"
    );
    assert!(
        from_second.iter().all(|&tick| tick >= killed),
        "the process standing by ran nothing while the runner lived: {from_second:?}, killed at {killed}"
    );
    let took_over = from_second[0] - killed;
    assert!(took_over <= 10, "taken over {took_over} s after the kill");
    let mut all: Vec<u64> = from_first.iter().chain(&from_second).copied().collect();
    all.sort_unstable();
    let mut unique_ticks = all.clone();
    unique_ticks.dedup();
    assert_eq!(all, unique_ticks, "no tick ran twice");
    let longest_gap = all.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        longest_gap <= 11,
        "the longest gap between ticks is {longest_gap} s"
    );

    second.terminate();
    second.expect_line("stopped");
    let probe = postage::testing::Probe::open(&connection).await.unwrap();
    probe.delete_queue(&format!("{name}.jobs")).await.unwrap();
    connection.close().await.unwrap();
}
