//! A message's `fingerprint` field: [`WireFingerprint`].

use std::ops::Deref;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::lazy::LazyObject;
use crate::fingerprint::Fingerprint;

/// A message's `fingerprint` field: the sender's fingerprint in map form.
///
/// It reads like a `Map<String, Value>` (through `Deref`) and is built from
/// one with `.into()` (to change it, assign a new one). A decoded message
/// keeps the field as the JSON text it arrived as and parses it into a map
/// the first time it is read, so that a processor that never looks at the
/// sender does not pay for it; re-encoding an unread field writes that text
/// back unchanged.
///
/// ```
/// use postage::message::WireFingerprint;
/// use postage::Fingerprint;
///
/// let field = WireFingerprint::from(Fingerprint::new("echo_send", "application").as_map());
/// assert_eq!(field["name"], "echo_send");
/// assert_eq!(Fingerprint::from_map(&field).name.as_deref(), Some("echo_send"));
/// ```
#[derive(Clone, Default)]
pub struct WireFingerprint(LazyObject);

impl WireFingerprint {
    /// Consumes the field, giving the map.
    pub fn into_inner(self) -> Map<String, Value> {
        self.0.into_map()
    }
}

impl Deref for WireFingerprint {
    type Target = Map<String, Value>;
    fn deref(&self) -> &Self::Target {
        self.0.map()
    }
}

impl From<Map<String, Value>> for WireFingerprint {
    fn from(map: Map<String, Value>) -> Self {
        WireFingerprint(LazyObject::from_map(map))
    }
}

/// The fingerprint of a sender, its JSON text written once: a producer or
/// processor puts it into every message it sends, and the encoder copies
/// the text instead of serializing six keys each time.
///
/// ```
/// use postage::message::WireFingerprint;
/// use postage::Fingerprint;
///
/// let field = WireFingerprint::from(&Fingerprint::new("echo_send", "application"));
/// assert_eq!(field["type"], "application");
/// ```
impl From<&Fingerprint> for WireFingerprint {
    fn from(fingerprint: &Fingerprint) -> Self {
        let map = fingerprint.as_map();
        WireFingerprint(LazyObject {
            // A map of strings always serializes; on the impossible error
            // the map is written instead.
            raw: serde_json::value::to_raw_value(&map).ok(),
            map: OnceLock::from(map),
            failed: None,
        })
    }
}

impl PartialEq for WireFingerprint {
    fn eq(&self, other: &Self) -> bool {
        self.0.map() == other.0.map()
    }
}

impl std::fmt::Debug for WireFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.map().fmt(f)
    }
}

impl Serialize for WireFingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for WireFingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        LazyObject::deserialize(d, "fingerprint").map(WireFingerprint)
    }
}
