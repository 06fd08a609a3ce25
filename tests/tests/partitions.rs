//! The order checker across processes: four worker processes share the
//! 16 partitions of a group while a producer sends numbered steps of 32
//! keys; a worker is killed (`kill -9`) and restarted, or on a
//! three-node cluster with quorum partitions a node is killed, and
//! another worker joins meanwhile.
//! Every step must be handled (none lost), each key's steps in order and
//! never two at once; steps handled twice are counted (redeliveries of
//! what the killed worker had not acknowledged, and sends repeated when a
//! killed node swallowed their confirmation).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stderr)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use postage::flow::{OrderKey, Partitions};
use postage::middleware::PartitionLayer;
use postage::prelude::*;
use postage_tests::node::{Cluster, PrivateNode};
use postage_tests::{Spawned, unique};
use serde_json::json;

const KEYS: u64 = 32;
const STEPS: u64 = 60;

/// The nodes and the worker processes are heavy for a 2-core machine:
/// one order checker at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn start(url: &str, group: &str, name: &str, quorum: bool) -> Spawned {
    let mut command = Command::new(env!("CARGO_BIN_EXE_test_partition_worker"));
    command.args([group, name]).env("POSTAGE_TEST_URL", url);
    if quorum {
        command.arg("quorum");
    }
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

/// What fails a third of the way through.
enum Fault {
    /// Worker 1 is killed (`kill -9`).
    Worker,
    /// The node of the cluster most connections are on is killed
    /// (`kill -9`).
    Node(Arc<Cluster>),
}

/// The node of `cluster` most connections are on (printed with them).
fn busiest(cluster: &Cluster) -> &PrivateNode {
    // A connection's process id names its node: `<name@host.1234.0>`.
    let listed = cluster.nodes()[0].rabbitmqctl(&["-s", "list_connections", "pid"]);
    let on = |node: &PrivateNode| {
        let prefix = format!("<{}.", node.name());
        listed
            .lines()
            .filter(|pid| pid.trim().starts_with(&prefix))
            .count()
    };
    let node = cluster.nodes().iter().max_by_key(|node| on(node)).unwrap();
    eprintln!(
        "killing {}: {} of {} connections",
        node.name(),
        on(node),
        listed.lines().count()
    );
    node
}

/// What the order checker found.
#[derive(Debug)]
struct Report {
    violations: usize,
    overlaps: usize,
    duplicates: usize,
    /// Steps handled by each worker process.
    by_worker: Vec<usize>,
    /// How many worker processes were started.
    started: usize,
    /// The longest wait, after the fault, of a key whose last step
    /// before it was handled by the killed worker (or, with a killed
    /// node, of any key) for its next step.
    takeover_ms: u128,
    /// From the fault to the worker that joined.
    joined_after_ms: u128,
    /// From the start of the worker that joined until it handled its
    /// first step: the partitions spread again.
    join_ms: u128,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} order violations, {} overlaps, 0 lost, {} duplicates, handled per worker {:?}, \
             longest wait of a key after the fault {} ms, the worker that joined worked after {} ms",
            self.violations,
            self.overlaps,
            self.duplicates,
            self.by_worker,
            self.takeover_ms,
            self.join_ms
        )
    }
}

/// Four workers of a group of 16 partitions connected to `url`, 32 keys ×
/// 60 steps sent one by one; `fault` a third of the way through (a killed
/// worker restarted halfway), a fifth worker joining at two thirds.
/// Fails when a step is not handled within 60 s after the last was sent.
async fn check_order(url: &str, quorum: bool, fault: Fault) -> Report {
    let group = unique("orders");
    let mut partitions = Partitions::new(group.clone(), 16).by(OrderKey::parameter("key"));
    if quorum {
        partitions = partitions.quorum();
    }
    let mut started = 4;
    let mut workers: Vec<Spawned> = (0..started)
        .map(|n| start(url, &group, &format!("w{n}"), quorum))
        .collect();
    // The workers hear from each other and share the partitions.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let connection = Connection::connect(Config::from_url(url).unwrap())
        .await
        .unwrap();
    let producer = Producer::builder()
        .ek(partitions.exchange(), "")
        .layer(PartitionLayer::new(partitions.clone()))
        .connect(&connection)
        .await
        .unwrap();
    let mut lines: Vec<String> = Vec::new();
    let (mut killed_pid, mut failed_at, mut joined_at, mut joined_pid) = (None, 0, 0, 0);
    for seq in 0..STEPS {
        for key in 0..KEYS {
            let step = json!({"key": format!("k{key:02}"), "seq": seq});
            // A send whose outcome a killed node swallowed is sent again
            // (its first copy may arrive too: a duplicate, in order).
            let mut attempts = 0;
            while let Err(error) = producer.command("step", &step).await {
                attempts += 1;
                eprintln!("step {step} sent again: {}", error.report());
                assert!(
                    attempts < 20,
                    "a step could not be sent: {}",
                    error.report()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        if seq == STEPS / 3 {
            failed_at = now_ns();
            match &fault {
                Fault::Worker => {
                    let mut killed = workers.remove(1);
                    killed_pid = Some(killed.pid());
                    lines.extend(killed.kill());
                }
                Fault::Node(cluster) => {
                    let cluster = cluster.clone();
                    tokio::task::spawn_blocking(move || busiest(&cluster).kill())
                        .await
                        .unwrap();
                }
            }
        }
        if seq == STEPS / 2 {
            // The killed worker comes back (a new process, the same name).
            if killed_pid.is_some() {
                workers.push(start(url, &group, "w1", quorum));
                started += 1;
            }
        }
        if seq == 2 * STEPS / 3 {
            joined_at = now_ns();
            let joined = start(url, &group, "w4", quorum);
            joined_pid = joined.pid();
            workers.push(joined);
            started += 1;
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
    if let Fault::Worker = fault {
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
    }
    connection.close().await.unwrap();

    let handled = parse(&lines);
    let joined_worked = handled
        .iter()
        .filter(|step| step.pid == joined_pid)
        .map(|step| step.start)
        .min()
        .unwrap_or(u128::MAX);
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
        let (mut next, mut last_end, mut last_pid) = (0, 0, 0);
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
            let waited = killed_pid.is_none_or(|pid| last_pid == pid && step.pid != pid);
            if waited && last_end < failed_at && step.start > failed_at {
                takeover_ns = takeover_ns.max(step.start - failed_at);
            }
            last_end = step.end;
            last_pid = step.pid;
        }
        assert_eq!(next, STEPS, "every step of {} handled", steps[0].key);
    }
    Report {
        violations,
        overlaps,
        duplicates,
        by_worker: by_worker.into_values().collect(),
        started,
        takeover_ms: takeover_ns / 1_000_000,
        joined_after_ms: (joined_at - failed_at) / 1_000_000,
        join_ms: joined_worked.saturating_sub(joined_at) / 1_000_000,
    }
}

/// The order checker's verdict: in order, never two steps of a key at
/// once, the worker that joined given partitions.
fn assert_in_order(report: &Report) {
    assert_eq!(
        report.violations, 0,
        "every key's steps in order: {report:?}"
    );
    assert_eq!(
        report.overlaps, 0,
        "never two steps of one key at once: {report:?}"
    );
    assert_eq!(
        report.by_worker.len(),
        report.started,
        "every worker process took partitions: {report:?}"
    );
    assert!(
        report.join_ms < 10_000,
        "the worker that joined took partitions within 10 s: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_keep_every_keys_order_while_one_is_killed_and_one_joins() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let report = check_order(&postage_tests::test_url(), false, Fault::Worker).await;
    eprintln!(
        "order checker, one broker: {KEYS} keys x {STEPS} steps, 4 workers, one killed and \
         restarted, one joined {} ms after: {report}",
        report.joined_after_ms
    );
    assert_in_order(&report);
    assert!(
        report.takeover_ms < 10_000,
        "the killed worker's partitions were taken over within 10 s: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_on_quorum_partitions_keep_every_keys_order_while_a_cluster_node_is_killed() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let cluster = Arc::new(
        tokio::task::spawn_blocking(|| Cluster::start(env!("CARGO_TARGET_TMPDIR"), 3))
            .await
            .unwrap(),
    );
    let report = check_order(&cluster.url(), true, Fault::Node(cluster.clone())).await;
    eprintln!(
        "order checker, three-node cluster: {KEYS} keys x {STEPS} steps on quorum partitions, \
         4 workers, a node killed, a worker joined {} ms after: {report}",
        report.joined_after_ms
    );
    assert_in_order(&report);
}
