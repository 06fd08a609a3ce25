//! The order checker across processes: four worker processes share the
//! 16 partitions of a group while a producer sends numbered steps of 32
//! keys; one worker is killed (`kill -9`) and another joins meanwhile.
//! Every step must be handled (none lost), each key's steps in order and
//! never two at once; steps handled twice are counted (only redeliveries
//! of what the killed worker had not acknowledged).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stderr)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use postage::flow::{OrderKey, Partitions};
use postage::middleware::PartitionLayer;
use postage::prelude::*;
use postage_tests::{Spawned, connect, unique};
use serde_json::json;

const KEYS: u64 = 32;
const STEPS: u64 = 60;

fn start(group: &str, name: &str) -> Spawned {
    let mut command = Command::new(env!("CARGO_BIN_EXE_test_partition_worker"));
    command.args([group, name]);
    let process = Spawned::start(command);
    process.expect_line("ready");
    process
}

/// One handled step: key, seq, start and end (ns), the worker's pid.
#[derive(Debug, Clone)]
struct Handled {
    key: String,
    seq: u64,
    start: u128,
    end: u128,
    pid: u32,
}

fn parse(lines: &[String]) -> Vec<Handled> {
    lines
        .iter()
        .filter_map(|line| {
            let mut parts = line.strip_prefix("step ")?.split_whitespace();
            Some(Handled {
                key: parts.next()?.to_owned(),
                seq: parts.next()?.parse().ok()?,
                start: parts.next()?.parse().ok()?,
                end: parts.next()?.parse().ok()?,
                pid: parts.next()?.parse().ok()?,
            })
        })
        .collect()
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_keep_every_keys_order_while_one_is_killed_and_one_joins() {
    let group = unique("orders");
    let partitions = Partitions::new(group.clone(), 16).by(OrderKey::parameter("key"));
    let mut workers: Vec<Spawned> = (0..4).map(|n| start(&group, &format!("w{n}"))).collect();
    // The workers hear from each other and share the partitions.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let connection = connect().await;
    let producer = Producer::builder()
        .ek(partitions.exchange(), "")
        .layer(PartitionLayer::new(partitions.clone()))
        .connect(&connection)
        .await
        .unwrap();
    let mut lines: Vec<String> = Vec::new();
    let mut killed_pid = 0;
    let mut killed_at = 0;
    let mut joined_at = 0;
    for seq in 0..STEPS {
        for key in 0..KEYS {
            producer
                .command("step", json!({"key": format!("k{key:02}"), "seq": seq}))
                .await
                .unwrap();
        }
        if seq == STEPS / 3 {
            let mut killed = workers.remove(1);
            killed_pid = killed.pid();
            killed_at = now_ns();
            lines.extend(killed.kill());
        }
        if seq == 2 * STEPS / 3 {
            joined_at = now_ns();
            workers.push(start(&group, "w4"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        for worker in &workers {
            lines.extend(worker.lines_now());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for worker in &workers {
            lines.extend(worker.lines_now());
        }
        let handled: HashSet<(String, u64)> =
            parse(&lines).into_iter().map(|h| (h.key, h.seq)).collect();
        if handled.len() as u64 >= KEYS * STEPS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lost: {} of {} steps handled after 60 s",
            handled.len(),
            KEYS * STEPS
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for worker in &mut workers {
        worker.terminate();
    }
    for worker in &workers {
        lines.extend(worker.lines_now());
    }

    let handled = parse(&lines);
    let mut by_key: BTreeMap<String, Vec<Handled>> = BTreeMap::new();
    for step in handled {
        by_key.entry(step.key.clone()).or_default().push(step);
    }
    let (mut violations, mut overlaps, mut duplicates) = (0, 0, 0);
    let mut takeover_ns: u128 = 0;
    let mut by_worker: HashMap<u32, usize> = HashMap::new();
    for steps in by_key.values_mut() {
        steps.sort_by_key(|step| step.start);
        let mut seen: HashSet<u64> = HashSet::new();
        let mut next = 0;
        let mut last_end = 0;
        let mut last_pid = 0;
        for step in steps.iter() {
            *by_worker.entry(step.pid).or_default() += 1;
            if step.start < last_end {
                overlaps += 1;
                eprintln!("overlap: {step:?}");
            }
            if !seen.insert(step.seq) {
                duplicates += 1;
            } else if step.seq == next {
                next += 1;
            } else {
                violations += 1;
                eprintln!("out of order: {step:?}, expected {next}");
            }
            if last_pid == killed_pid && step.pid != killed_pid && step.start > killed_at {
                takeover_ns = takeover_ns.max(step.start - killed_at);
            }
            last_end = step.end;
            last_pid = step.pid;
        }
        assert_eq!(next, STEPS, "every step of {} handled", steps[0].key);
    }
    eprintln!(
        "order checker: {} keys x {STEPS} steps, 4 workers, one killed, one joined {} ms after: \
         {violations} order violations, {overlaps} overlaps, 0 lost, {duplicates} duplicates, \
         handled per worker {:?}, longest wait of a killed worker's key for its new holder {} ms",
        KEYS,
        (joined_at - killed_at) / 1_000_000,
        by_worker.values().collect::<Vec<_>>(),
        takeover_ns / 1_000_000
    );
    assert_eq!(violations, 0, "every key's steps in order");
    assert_eq!(overlaps, 0, "never two steps of one key at once");
    assert!(
        takeover_ns < 10_000_000_000,
        "the killed worker's partitions were taken over within 10 s"
    );
    assert!(
        by_worker.len() >= 5,
        "the worker that joined took partitions: {by_worker:?}"
    );
    let probe = postage_tests::conformance::probe(&connection).await;
    for partition in 0..16 {
        probe
            .delete_queue(partitions.queue(partition).name())
            .await
            .unwrap();
    }
    probe
        .delete_exchange(partitions.exchange().name())
        .await
        .unwrap();
    probe
        .delete_exchange(&format!("{group}.members"))
        .await
        .unwrap();
    connection.close().await.unwrap();
}
