//! A network namespace of a test's own, for faults the kernel makes:
//! packets dropped silently by `iptables` (a half-open connection: no
//! reset, no answer), which the shared broker never sees.
//!
//! [`rerun_inside`] runs the calling test again, alone, in a process
//! started with `unshare --net` (as root): a loopback of its own, its own
//! `epmd`, its own firewall. Nodes the test starts there are stopped by
//! their `Drop`; [`Namespace`] kills that `epmd` when it goes.

use std::process::Command;

/// Set in the process that runs inside the namespace.
const INSIDE: &str = "POSTAGE_TEST_NETNS";

/// In the test's own process: runs `test` (its full name) again in a new
/// network namespace, fails if it fails there, and returns `None`: the
/// caller returns at once. Inside the namespace: brings its loopback up
/// and returns the [`Namespace`] to keep for the test's length.
pub fn rerun_inside(test: &str) -> Option<Namespace> {
    if std::env::var_os(INSIDE).is_some() {
        run("ip", &["link", "set", "lo", "up"]);
        return Some(Namespace);
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("no test binary: {e}"));
    let status = Command::new("unshare")
        .arg("--net")
        .arg("--")
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .status()
        .unwrap_or_else(|e| panic!("cannot run unshare (util-linux, as root): {e}"));
    assert!(
        status.success(),
        "{test} failed in its network namespace ({status}); its output is above"
    );
    None
}

/// The namespace the test runs in. Dropped, it stops the namespace's
/// `epmd` (started by the first node), so that nothing keeps the
/// namespace alive once the test's nodes are stopped.
#[derive(Debug)]
pub struct Namespace;

impl Namespace {
    /// Drops every packet to or from TCP port `port`, silently: the
    /// sockets on both sides stay open and hear nothing.
    pub fn drop_traffic(&self, port: u16) {
        let port = port.to_string();
        for direction in ["--dport", "--sport"] {
            run(
                "iptables",
                &["-A", "INPUT", "-p", "tcp", direction, &port, "-j", "DROP"],
            );
        }
    }

    /// Drops every packet that `rule` (iptables match arguments)
    /// matches.
    pub fn drop_matching(&self, rule: &[&str]) {
        let mut args = vec!["-A", "INPUT"];
        args.extend_from_slice(rule);
        args.extend_from_slice(&["-j", "DROP"]);
        run("iptables", &args);
    }

    /// Lets every packet through again.
    pub fn restore_traffic(&self) {
        run("iptables", &["-F", "INPUT"]);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("epmd").arg("-kill").output();
    }
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
