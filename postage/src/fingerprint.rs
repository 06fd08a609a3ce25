//! Who a component is: name, type, pid, host, user and virtual host.

use serde_json::{Map, Value};

/// The tuple form of a [`Fingerprint`]: `(name, type, pid, host, user,
/// vhost)`.
pub type FingerprintTuple<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<u32>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

/// The identity of a component, sent in every message it produces.
///
/// [`Fingerprint::new`] reads pid, host, user and virtual host from the
/// operating system and the environment at the moment it is called (after a
/// `restart` the new process makes a new one). Python Postage sends every
/// value as a string and writes `"None"` for a missing name or type;
/// [`Fingerprint::as_map`] does the same, and [`Fingerprint::from_map`]
/// reads either form back.
///
/// ```
/// use postage::Fingerprint;
///
/// let fp = Fingerprint::new("echo_send", "application");
/// let map = fp.as_map();
/// assert_eq!(map["name"], "echo_send");
/// assert_eq!(map["pid"], std::process::id().to_string());
/// assert_eq!(Fingerprint::from_map(&map), fp);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fingerprint {
    /// The component's name (Python's `name`).
    pub name: Option<String>,
    /// A rough category, e.g. `application` or `controller` (Python's `type`).
    pub kind: Option<String>,
    /// The OS process id.
    pub pid: Option<u32>,
    /// The host name.
    pub host: Option<String>,
    /// The OS user running the component.
    pub user: Option<String>,
    /// The RabbitMQ virtual host the component uses.
    pub vhost: Option<String>,
}

impl Fingerprint {
    /// A fingerprint for a component called `name` of the given type, with
    /// pid, host, user and vhost (`POSTAGE_VHOST`, default `/`) read now.
    pub fn new(name: impl Into<String>, kind: impl Into<String>) -> Self {
        Fingerprint {
            name: Some(name.into()),
            kind: Some(kind.into()),
            ..Self::anonymous()
        }
    }

    /// A fingerprint with no name and no type (Python's `Fingerprint()`).
    pub fn anonymous() -> Self {
        Fingerprint {
            name: None,
            kind: None,
            pid: Some(std::process::id()),
            host: hostname(),
            user: username(),
            vhost: Some(
                std::env::var("POSTAGE_VHOST")
                    .ok()
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| "/".into()),
            ),
        }
    }

    /// Replaces the virtual host (a producer sets its connection's).
    #[must_use]
    pub fn with_vhost(mut self, vhost: impl Into<String>) -> Self {
        self.vhost = Some(vhost.into());
        self
    }

    /// The map form sent on the wire: every value a string, `"None"` where a
    /// value is missing (as Python Postage sends it).
    pub fn as_map(&self) -> Map<String, Value> {
        let text = |v: &Option<String>| Value::String(v.clone().unwrap_or_else(|| "None".into()));
        let mut map = Map::with_capacity(6);
        map.insert("name".into(), text(&self.name));
        map.insert("type".into(), text(&self.kind));
        map.insert("pid".into(), text(&self.pid.map(|p| p.to_string())));
        map.insert("host".into(), text(&self.host));
        map.insert("user".into(), text(&self.user));
        map.insert("vhost".into(), text(&self.vhost));
        map
    }

    /// The tuple form `(name, type, pid, host, user, vhost)`.
    pub fn as_tuple(&self) -> FingerprintTuple<'_> {
        (
            self.name.as_deref(),
            self.kind.as_deref(),
            self.pid,
            self.host.as_deref(),
            self.user.as_deref(),
            self.vhost.as_deref(),
        )
    }

    /// Reads a fingerprint from a message, leniently: values may be strings
    /// or numbers, `"None"`, `null` and missing keys become `None`, and
    /// anything else is ignored.
    pub fn from_map(map: &Map<String, Value>) -> Self {
        let text = |key: &str| match map.get(key) {
            Some(Value::String(s)) if s != "None" => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            _ => None,
        };
        Fingerprint {
            name: text("name"),
            kind: text("type"),
            pid: text("pid").and_then(|p| p.trim().parse().ok()),
            host: text("host"),
            user: text("user"),
            vhost: text("vhost"),
        }
    }
}

impl std::fmt::Display for Fingerprint {
    /// `name/type pid@host (user, vhost)`, with `?` for missing values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
        write!(
            f,
            "{}/{} {}@{} ({}, {})",
            s(&self.name),
            s(&self.kind),
            self.pid.map_or_else(|| "?".into(), |p| p.to_string()),
            s(&self.host),
            s(&self.user),
            s(&self.vhost)
        )
    }
}

/// As on the wire: [`as_map`](Fingerprint::as_map).
impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_map().serialize(serializer)
    }
}

/// Leniently, as [`from_map`](Fingerprint::from_map) reads: any object.
impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Map::<String, Value>::deserialize(deserializer).map(|map| Fingerprint::from_map(&map))
    }
}

fn hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
}

/// The login name, looked up as Python's `getpass.getuser()` does: the
/// variables `LOGNAME`, `USER`, `LNAME`, `USERNAME`, then the password
/// database entry of the process's user id.
fn username() -> Option<String> {
    ["LOGNAME", "USER", "LNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .or_else(user_from_passwd)
}

fn user_from_passwd() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let entry_uid: u32 = fields.nth(1)?.parse().ok()?;
        (entry_uid == uid).then(|| name.to_owned())
    })
}
