//! Acknowledgements coalesced in runs, with processes on RabbitMQ: a
//! processor killed outright (SIGKILL) mid-stream loses nothing (every
//! message it did not acknowledge goes to the next consumer) and has at
//! most its window delivered again; a processor stopped gracefully
//! acknowledges every finished delivery first, so nothing is delivered
//! twice.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use postage::prelude::*;
use postage::testing::Probe;
use postage_tests::{Spawned, connect, unique};

/// Messages in the queue before the first processor starts.
const COUNT: u64 = 3_000;
/// The processors' prefetch: a run is acknowledged at half of it.
const PREFETCH: u16 = 40;

/// Declares `queue` and fills it with `count` commands numbered 0 to
/// COUNT - 1.
async fn fill(queue: &str) -> Probe {
    let connection = connect().await;
    let probe = Probe::open(&connection).await.expect("a probe");
    probe
        .declare_queue(&Queue::new(queue))
        .await
        .expect("declare the queue");
    let producer = Producer::builder()
        .ek(Exchange::direct(""), queue)
        .fingerprint(Fingerprint::new("ack_test", "test"))
        .connect(&connection)
        .await
        .expect("producer");
    for n in 0..COUNT {
        producer.command("count", n).await.expect("sent");
    }
    probe
}

/// A `test_counter` on `queue`, once it says it is ready, and what it
/// printed until then (it may have handled messages already).
fn counter(queue: &str) -> (Spawned, Vec<String>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_test_counter"));
    command.args([queue, &PREFETCH.to_string()]);
    let process = Spawned::start(command);
    let mut lines = Vec::new();
    process.read_until(&mut lines, "ready", |lines| {
        lines.iter().any(|line| line.starts_with("ready pid="))
    });
    (process, lines)
}

/// The numbers in `got <n>` lines.
fn numbers(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|line| line.strip_prefix("got "))
        .map(|n| n.parse().expect("a number"))
        .collect()
}

/// Reads the lines of `process` until `done` holds for the numbers seen.
fn read_numbers(process: &Spawned, seen: &mut Vec<String>, done: impl Fn(&[u64]) -> bool) {
    process.read_until(seen, "the processor's progress", |lines| {
        done(&numbers(lines))
    });
}

/// What the second processor handled until every message was, counted
/// against the first's: (duplicates, missing).
fn finish_with_second(queue: &str, first: &[u64]) -> (usize, usize) {
    let (mut second, mut lines) = counter(queue);
    let before: BTreeSet<u64> = first.iter().copied().collect();
    // Until every message was handled, or nothing more comes.
    loop {
        let all: BTreeSet<u64> = before.iter().chain(&numbers(&lines)).copied().collect();
        if all.len() == usize::try_from(COUNT).unwrap() {
            break;
        }
        let more = second.lines_until_quiet(Duration::from_secs(5));
        if more.is_empty() {
            let missing: Vec<u64> = (0..COUNT).filter(|n| !all.contains(n)).collect();
            panic!(
                "never handled: {missing:?}; the first handled {} (up to {:?}), the second {}",
                before.len(),
                before.last(),
                numbers(&lines).len()
            );
        }
        lines.extend(more);
    }
    second.terminate();
    assert!(second.wait_exit().success());
    let again = numbers(&lines);
    let once: BTreeSet<u64> = again.iter().copied().collect();
    assert_eq!(
        once.len(),
        again.len(),
        "the second processor saw nothing twice"
    );
    let all: BTreeSet<u64> = before.union(&once).copied().collect();
    let missing = usize::try_from(COUNT).unwrap() - all.len();
    (before.intersection(&once).count(), missing)
}

async fn cleanup(probe: &Probe, queue: &str) {
    assert_eq!(probe.depth(queue).await.unwrap(), 0, "nothing left");
    probe.delete_queue(queue).await.expect("delete the queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_killed_mid_stream_loses_nothing_and_repeats_at_most_its_window() {
    let queue = unique("acks-kill");
    let probe = fill(&queue).await;
    let (mut first, mut lines) = counter(&queue);
    read_numbers(&first, &mut lines, |seen| seen.len() >= 1_000);
    lines.extend(first.kill());
    let handled = numbers(&lines);
    assert!(
        handled.len() < usize::try_from(COUNT).unwrap(),
        "killed mid-stream"
    );
    let (duplicates, missing) = finish_with_second(&queue, &handled);
    eprintln!(
        "killed after {} handled: {duplicates} delivered again",
        handled.len()
    );
    assert_eq!(missing, 0, "every message was handled");
    // The broker delivers again only what it holds unacknowledged: at
    // most the prefetch; coalescing keeps the pending run below half of it.
    assert!(
        duplicates <= usize::from(PREFETCH),
        "{duplicates} delivered again"
    );
    cleanup(&probe, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_stopped_gracefully_mid_stream_repeats_nothing() {
    let queue = unique("acks-stop");
    let probe = fill(&queue).await;
    let (mut first, mut lines) = counter(&queue);
    read_numbers(&first, &mut lines, |seen| seen.len() >= 1_000);
    first.terminate();
    assert!(first.wait_exit().success());
    lines.extend(first.kill());
    assert!(lines.iter().any(|line| line == "stopped"), "{lines:?}");
    let handled = numbers(&lines);
    let (duplicates, missing) = finish_with_second(&queue, &handled);
    assert_eq!(missing, 0, "every message was handled");
    assert_eq!(
        duplicates, 0,
        "a graceful stop acknowledged everything it finished"
    );
    cleanup(&probe, &queue).await;
}
