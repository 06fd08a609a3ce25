//! A private RabbitMQ node for fault tests: its own node name, ports, data
//! directory and Erlang cookie under a folder the test names (in the build
//! folder), so tests can stop, kill and restart it without touching the
//! shared broker. Dropping it stops the node and removes the folder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Files for a TLS listener: a throwaway certificate authority and a
/// server certificate for `localhost` signed by it.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA certificate (PEM): what clients trust.
    pub ca: PathBuf,
    /// The server certificate (PEM).
    pub cert: PathBuf,
    /// The server key (PEM).
    pub key: PathBuf,
}

impl TlsFiles {
    /// Makes a CA and a `localhost` server certificate with `openssl`.
    pub fn generate(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {dir:?}: {e}"));
        let files = TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        };
        let ca_key = dir.join("ca.key");
        let csr = dir.join("server.csr");
        let ext = dir.join("san.ext");
        std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
            .unwrap_or_else(|e| panic!("cannot write {ext:?}: {e}"));
        let p = |p: &Path| p.to_string_lossy().into_owned();
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=postage-test-ca",
            "-keyout",
            &p(&ca_key),
            "-out",
            &p(&files.ca),
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &p(&files.key),
            "-out",
            &p(&csr),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-days",
            "1",
            "-in",
            &p(&csr),
            "-CA",
            &p(&files.ca),
            "-CAkey",
            &p(&ca_key),
            "-CAcreateserial",
            "-extfile",
            &p(&ext),
            "-out",
            &p(&files.cert),
        ]);
        files
    }
}

fn openssl(args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A RabbitMQ node of the test's own.
#[derive(Debug)]
pub struct PrivateNode {
    name: String,
    dir: PathBuf,
    port: u16,
    dist_port: u16,
    /// The loopback address its distribution traffic leaves from, when
    /// it has one of its own (see [`Cluster::start_partitionable`]).
    dist_ip: Option<u8>,
    tls_port: Option<u16>,
    env: Vec<(String, String)>,
}

/// A TCP port nothing listens on now, on the loopback.
pub fn free_port() -> u16 {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("no free port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("no local address: {e}"))
        .port()
}

fn rabbit_bin(tool: &str) -> String {
    let direct = format!("/usr/lib/rabbitmq/bin/{tool}");
    if Path::new(&direct).exists() {
        direct
    } else {
        tool.to_owned()
    }
}

impl PrivateNode {
    /// Starts a node with its files under `base` (use the test's
    /// `CARGO_TARGET_TMPDIR`), with a TLS listener when `tls` is given,
    /// and waits until it accepts connections.
    pub fn start(base: &str, tls: Option<&TlsFiles>) -> Self {
        let node = Self::prepare(base, tls, None, None);
        node.boot();
        node
    }

    /// Starts a node whose `advanced.config` is `advanced` (Erlang terms,
    /// e.g. `[{rabbit, [{consumer_timeout, 2000}]}].`).
    pub fn start_advanced(base: &str, advanced: &str) -> Self {
        let node = Self::prepare(base, None, None, None);
        let file = node.dir.join("advanced.config");
        std::fs::write(&file, advanced).unwrap_or_else(|e| panic!("cannot write {file:?}: {e}"));
        node.boot();
        node
    }

    /// A node ready to boot, its Erlang cookie in `home` when given (nodes
    /// that share one `home` can form a cluster), its distribution traffic
    /// from `127.0.0.<dist_ip>` when given.
    fn prepare(
        base: &str,
        tls: Option<&TlsFiles>,
        home: Option<&Path>,
        dist_ip: Option<u8>,
    ) -> Self {
        let name = format!(
            "postage-fault-{}-{}",
            std::process::id(),
            crate::unique("n").rsplit('-').next().unwrap_or("0")
        );
        let dir = Path::new(base).join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["mnesia", "log"] {
            std::fs::create_dir_all(dir.join(sub))
                .unwrap_or_else(|e| panic!("cannot create {dir:?}: {e}"));
        }
        let port = free_port();
        let dist_port = free_port();
        let tls_port = tls.map(|_| free_port());
        let mut conf = format!("listeners.tcp.1 = 127.0.0.1:{port}\nloopback_users = none\n");
        if let (Some(tls), Some(tls_port)) = (tls, tls_port) {
            conf.push_str(&format!(
                "listeners.ssl.1 = 127.0.0.1:{tls_port}\n\
                 ssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_none\n\
                 ssl_options.fail_if_no_peer_cert = false\n",
                tls.ca.display(),
                tls.cert.display(),
                tls.key.display()
            ));
        }
        let write = |file: &str, text: &str| {
            std::fs::write(dir.join(file), text)
                .unwrap_or_else(|e| panic!("cannot write {file}: {e}"));
        };
        write("rabbitmq.conf", &conf);
        write("enabled_plugins", "[].\n");
        write("rabbitmq-env.conf", "");
        write("advanced.config", "[].\n");
        let d = |sub: &str| dir.join(sub).to_string_lossy().into_owned();
        let node = format!("{name}@localhost");
        let home = home.map_or_else(|| d(""), |home| home.to_string_lossy().into_owned());
        let mut env = vec![
            ("HOME".to_owned(), home),
            ("RABBITMQ_NODENAME".to_owned(), node.clone()),
            ("RABBITMQ_NODE_PORT".to_owned(), port.to_string()),
            ("RABBITMQ_DIST_PORT".to_owned(), dist_port.to_string()),
            ("RABBITMQ_MNESIA_BASE".to_owned(), d("mnesia")),
            ("RABBITMQ_LOG_BASE".to_owned(), d("log")),
            ("RABBITMQ_PID_FILE".to_owned(), d("pid")),
            ("RABBITMQ_CONFIG_FILE".to_owned(), d("rabbitmq.conf")),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE".to_owned(),
                d("enabled_plugins"),
            ),
            ("RABBITMQ_CONF_ENV_FILE".to_owned(), d("rabbitmq-env.conf")),
            (
                "RABBITMQ_ADVANCED_CONFIG_FILE".to_owned(),
                d("advanced.config"),
            ),
            ("ERL_EPMD_ADDRESS".to_owned(), "127.0.0.1".to_owned()),
        ];
        if let Some(ip) = dist_ip {
            // Listening everywhere, connecting from an address of its own:
            // a firewall tells its traffic with the other nodes apart.
            env.push((
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS".to_owned(),
                format!("-kernel inet_dist_connect_options [{{ip,{{127,0,0,{ip}}}}}]"),
            ));
        }
        PrivateNode {
            name: node,
            dir,
            port,
            dist_port,
            dist_ip,
            tls_port,
            env,
        }
    }

    /// The node's Erlang name, `name@localhost`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The AMQP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/%2f`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// `amqps://guest:guest@localhost:TLS_PORT/%2f`, if it has TLS.
    pub fn tls_url(&self) -> Option<String> {
        self.tls_port
            .map(|port| format!("amqps://guest:guest@localhost:{port}/%2f"))
    }

    fn command(&self, tool: &str) -> Command {
        let mut command = Command::new(rabbit_bin(tool));
        command.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
    }

    /// Runs `rabbitmqctl` against this node; panics when it fails.
    pub fn rabbitmqctl(&self, args: &[&str]) -> String {
        let output = self.ctl(args);
        assert!(
            output.status.success(),
            "rabbitmqctl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn ctl(&self, args: &[&str]) -> std::process::Output {
        self.command("rabbitmqctl")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run rabbitmqctl: {e}"))
    }

    /// Does the node accept TCP connections on its AMQP port?
    pub fn listening(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    /// Starts the node (again) and waits until it accepts connections.
    pub fn boot(&self) {
        let status = self
            .command("rabbitmq-server")
            .arg("-detached")
            .status()
            .unwrap_or_else(|e| panic!("cannot run rabbitmq-server: {e}"));
        assert!(status.success(), "rabbitmq-server -detached failed");
        let pid = self.dir.join("pid");
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.listening() {
            assert!(
                Instant::now() < deadline,
                "the private node {} did not start; see {}",
                self.name,
                self.dir.join("log").display()
            );
            if pid.exists() {
                let _ = self.ctl(&["wait", &pid.to_string_lossy(), "--timeout", "5"]);
            } else {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let output = self.ctl(&["await_startup", "--timeout", "60"]);
        assert!(
            output.status.success(),
            "the private node did not finish booting: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Stops the node cleanly.
    pub fn stop(&self) {
        let output = self.ctl(&["stop"]);
        assert!(
            output.status.success(),
            "rabbitmqctl stop failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        self.wait_down();
    }

    /// Kills the node's process with SIGKILL.
    pub fn kill(&self) {
        let pid = std::fs::read_to_string(self.dir.join("pid"))
            .unwrap_or_else(|e| panic!("no pid file: {e}"));
        let status = Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill -KILL {pid} failed");
        self.wait_down();
    }

    fn wait_down(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.listening() {
            assert!(Instant::now() < deadline, "the node did not go down");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Freezes the node (SIGSTOP): its sockets stay open, nothing answers.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Thaws a frozen node (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = std::fs::read_to_string(self.dir.join("pid"))
            .unwrap_or_else(|e| panic!("no pid file: {e}"));
        let status = Command::new("kill")
            .args([signal, pid.trim()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Raises (or clears) the node's memory alarm by moving its memory
    /// watermark below (or back above) what it uses.
    pub fn memory_alarm(&self, on: bool) {
        let watermark = if on { "0.000001" } else { "0.4" };
        self.rabbitmqctl(&["set_vm_memory_high_watermark", watermark]);
    }

    /// Raises (or clears) the node's disk alarm by moving its free disk
    /// limit above (or back below) what is free.
    pub fn disk_alarm(&self, on: bool) {
        let limit = if on { "1000000GB" } else { "50MB" };
        self.rabbitmqctl(&["set_disk_free_limit", limit]);
    }

    /// The node's resource alarms, as `rabbitmqctl status` lists them
    /// (empty when none).
    pub fn alarms(&self) -> String {
        let output = self.ctl(&["eval", "rabbit_alarm:get_alarms()."]);
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Everything the node has logged so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.join("log")) {
            for entry in entries.flatten() {
                if entry.path().extension().is_some_and(|e| e == "log") {
                    text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
                }
            }
        }
        text
    }

    /// The channel processes (as `rabbitmqctl` prints pids) of the
    /// consumers of `queue`.
    pub fn consumer_channels(&self, queue: &str) -> Vec<String> {
        let listing = self.rabbitmqctl(&[
            "list_consumers",
            "queue_name",
            "channel_pid",
            "--quiet",
            "--no-table-headers",
        ]);
        listing
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .filter(|(name, _)| *name == queue)
            .map(|(_, pid)| pid.trim().to_owned())
            .collect()
    }

    /// Suspends (`on`) or resumes an Erlang process of the node given as
    /// `rabbitmqctl` prints pids: a suspended channel takes what its
    /// queues deliver and passes none of it on.
    pub fn suspend_process(&self, pid: &str, on: bool) {
        let call = if on { "suspend" } else { "resume" };
        self.rabbitmqctl(&[
            "eval",
            &format!("sys:{call}(rabbit_misc:string_to_pid(\"{pid}\"))."),
        ]);
    }

    /// How many messages `queue` holds (ready and unacknowledged).
    pub fn queue_depth(&self, queue: &str) -> Option<u64> {
        let listing = self.rabbitmqctl(&[
            "list_queues",
            "name",
            "messages",
            "--quiet",
            "--no-table-headers",
        ]);
        listing
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .find(|(name, _)| *name == queue)
            .and_then(|(_, messages)| messages.trim().parse().ok())
    }

    /// Closes every client connection (as `rabbitmqctl
    /// close_all_connections`).
    pub fn close_all_connections(&self) {
        let output = self.ctl(&["close_all_connections", "test: dropped connection"]);
        assert!(
            output.status.success(),
            "close_all_connections failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl PrivateNode {
    /// The node's OS process, while it runs (a process of that pid that
    /// is not this node's, or a zombie, does not count).
    fn process(&self) -> Option<String> {
        let pid = std::fs::read_to_string(self.dir.join("pid")).ok()?;
        let pid = pid.trim().to_owned();
        let proc = Path::new("/proc").join(&pid);
        let environ = std::fs::read(proc.join("environ")).ok()?;
        let ours = format!("RABBITMQ_NODENAME={}", self.name);
        let is_ours = environ
            .split(|&b| b == 0)
            .any(|entry| entry == ours.as_bytes());
        let status = std::fs::read_to_string(proc.join("status")).unwrap_or_default();
        let zombie = status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'));
        (is_ours && !zombie).then_some(pid)
    }
}

impl Drop for PrivateNode {
    /// Stops the node (whatever state a failed test left it in: paused,
    /// frozen, a process of it suspended), killing it when it does not
    /// stop within 30 s, and removes its files.
    fn drop(&mut self) {
        if let Some(pid) = self.process() {
            // A frozen node stops only once thawed.
            let _ = Command::new("kill").args(["-CONT", &pid]).status();
            if let Ok(mut stopping) = self
                .command("rabbitmqctl")
                .args(["-n", &self.name, "stop"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
            {
                let deadline = Instant::now() + Duration::from_secs(30);
                while Instant::now() < deadline && matches!(stopping.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                let _ = stopping.kill();
                let _ = stopping.wait();
            }
            if let Some(pid) = self.process() {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Private nodes joined into one RabbitMQ cluster: they share an Erlang
/// cookie (one `HOME`), and every node after the first joins the first.
/// Dropping it stops every node.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<PrivateNode>,
    home: PathBuf,
}

impl Cluster {
    /// Starts `size` nodes under `base` and joins them.
    pub fn start(base: &str, size: usize) -> Self {
        let home = Self::home(base);
        let nodes: Vec<PrivateNode> = (0..size)
            .map(|_| PrivateNode::prepare(base, None, Some(&home), None))
            .collect();
        Self::form(nodes, home)
    }

    /// Starts `size` nodes that a firewall can partition (see
    /// [`Cluster::isolate`]): each node's distribution traffic leaves
    /// from an address of its own (`127.0.0.2` on), the nodes detect a
    /// lost peer within about 5 s (`net_ticktime`), and the minority side
    /// of a partition pauses (`cluster_partition_handling =
    /// pause_minority`). For a network namespace of the test's own
    /// ([`crate::netns`]).
    pub fn start_partitionable(base: &str, size: usize) -> Self {
        let home = Self::home(base);
        let nodes: Vec<PrivateNode> = (0..size)
            .map(|i| {
                let ip = u8::try_from(i + 2).unwrap_or(u8::MAX);
                let node = PrivateNode::prepare(base, None, Some(&home), Some(ip));
                let conf = node.dir.join("rabbitmq.conf");
                let mut text = std::fs::read_to_string(&conf).unwrap_or_default();
                text.push_str("cluster_partition_handling = pause_minority\n");
                std::fs::write(&conf, text)
                    .unwrap_or_else(|e| panic!("cannot write {conf:?}: {e}"));
                std::fs::write(
                    node.dir.join("advanced.config"),
                    "[{kernel, [{net_ticktime, 4}]}].\n",
                )
                .unwrap_or_else(|e| panic!("cannot write advanced.config: {e}"));
                node
            })
            .collect();
        Self::form(nodes, home)
    }

    /// A folder with an Erlang cookie, the `HOME` of a cluster's nodes.
    fn home(base: &str) -> PathBuf {
        let home = Path::new(base).join(crate::unique("cluster-home"));
        std::fs::create_dir_all(&home).unwrap_or_else(|e| panic!("cannot create {home:?}: {e}"));
        let cookie = home.join(".erlang.cookie");
        std::fs::write(
            &cookie,
            crate::unique("cookie").replace('-', "").to_uppercase(),
        )
        .unwrap_or_else(|e| panic!("cannot write the cookie: {e}"));
        let _ = Command::new("chmod").arg("400").arg(&cookie).status();
        home
    }

    /// Boots `nodes` and joins every one after the first to the first.
    fn form(nodes: Vec<PrivateNode>, home: PathBuf) -> Self {
        let cluster = Cluster { nodes, home };
        // Booted in parallel: each waits for its own start.
        std::thread::scope(|scope| {
            for node in &cluster.nodes {
                scope.spawn(|| node.boot());
            }
        });
        let first = cluster.nodes[0].name.clone();
        for node in &cluster.nodes[1..] {
            node.rabbitmqctl(&["stop_app"]);
            node.rabbitmqctl(&["join_cluster", &first]);
            node.rabbitmqctl(&["start_app"]);
            node.rabbitmqctl(&["await_startup", "--timeout", "60"]);
        }
        cluster
    }

    /// The nodes.
    pub fn nodes(&self) -> &[PrivateNode] {
        &self.nodes
    }

    /// Drops, in the test's network namespace, every packet between the
    /// node on `port` and the other nodes (clients and `rabbitmqctl` still
    /// reach every node). Nodes made by [`Cluster::start_partitionable`]
    /// only.
    pub fn isolate(&self, namespace: &crate::netns::Namespace, port: u16) {
        let Some(lonely) = self.node_on(port) else {
            panic!("no node on port {port}");
        };
        let ip = lonely
            .dist_ip
            .unwrap_or_else(|| panic!("not a partitionable cluster"));
        let address = format!("127.0.0.{ip}");
        let own = lonely.dist_port.to_string();
        let others: Vec<String> = self
            .nodes
            .iter()
            .filter(|node| node.port != port)
            .map(|node| node.dist_port.to_string())
            .collect();
        let others = others.join(",");
        // The others reaching its listener (from their own addresses, not
        // from 127.0.0.1 where the tools are), and it reaching theirs.
        let rules: [&[&str]; 4] = [
            &["-p", "tcp", "--dport", &own, "!", "-s", "127.0.0.1"],
            &["-p", "tcp", "--sport", &own, "!", "-d", "127.0.0.1"],
            &[
                "-p",
                "tcp",
                "-s",
                &address,
                "-m",
                "multiport",
                "--dports",
                &others,
            ],
            &[
                "-p",
                "tcp",
                "-d",
                &address,
                "-m",
                "multiport",
                "--sports",
                &others,
            ],
        ];
        for rule in rules {
            namespace.drop_matching(rule);
        }
    }

    /// `amqp://guest:guest@127.0.0.1:P1,127.0.0.1:P2,.../%2f`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        format!("amqp://guest:guest@{}/%2f", hosts.join(","))
    }

    /// The node listening on `port`.
    pub fn node_on(&self, port: u16) -> Option<&PrivateNode> {
        self.nodes.iter().find(|node| node.port() == port)
    }

    /// How many members of the quorum queue `queue` are online, asked of a
    /// running node (0 when none answers).
    pub fn online_members(&self, queue: &str) -> usize {
        let Some(asked) = self.nodes.iter().find(|node| node.listening()) else {
            return 0;
        };
        let output = asked.ctl(&[
            "list_queues",
            "name",
            "online",
            "--quiet",
            "--no-table-headers",
        ]);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .find(|(name, _)| *name == queue)
            .map_or(0, |(_, online)| online.matches('@').count())
    }

    /// What `rabbitmq-queues quorum_status` says of the quorum queue
    /// `queue`, asked of a running node: each member's Raft state and
    /// log indexes, as JSON (empty when no node answers).
    pub fn quorum_status(&self, queue: &str) -> String {
        let Some(asked) = self.nodes.iter().find(|node| node.listening()) else {
            return String::new();
        };
        let output = asked
            .command("rabbitmq-queues")
            .args([
                "-n",
                &asked.name,
                "quorum_status",
                queue,
                "--formatter",
                "json",
            ])
            .output();
        output.map_or_else(
            |e| format!("cannot run rabbitmq-queues: {e}"),
            |output| String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }

    /// The node that leads the quorum queue `queue`, asked of a running
    /// node.
    pub fn leader_of(&self, queue: &str) -> Option<&PrivateNode> {
        let asked = self.nodes.iter().find(|node| node.listening())?;
        let listing = asked.rabbitmqctl(&[
            "list_queues",
            "name",
            "leader",
            "--quiet",
            "--no-table-headers",
        ]);
        let leader = listing
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .find(|(name, _)| *name == queue)
            .map(|(_, leader)| leader.trim().to_owned())?;
        self.nodes.iter().find(|node| node.name == leader)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Nodes stop in their own Drop; the shared home goes last.
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}
