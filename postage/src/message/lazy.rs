//! A JSON object kept as the text it arrived as until it is read as a
//! map: the shared inside of [`Content`](super::Content) and
//! [`WireFingerprint`](super::WireFingerprint).

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A JSON object as a message field: kept as the text it arrived as, and
/// parsed into a map the first time it is read as one. Re-encoding a field
/// that was not changed writes that text back unchanged.
#[derive(Clone, Default)]
pub(super) struct LazyObject {
    /// The field as received; `None` when built from a map or changed.
    pub(super) raw: Option<Box<RawValue>>,
    pub(super) map: OnceLock<Map<String, Value>>,
    /// Why the field could not be made from what it was built from (a
    /// value whose `Serialize` failed): it reads as empty, and writing it
    /// fails with this.
    pub(super) failed: Option<Arc<str>>,
}

impl LazyObject {
    pub(super) fn from_map(map: Map<String, Value>) -> Self {
        LazyObject {
            raw: None,
            map: OnceLock::from(map),
            failed: None,
        }
    }

    /// The object whose JSON text is `raw` (an object's).
    pub(super) fn from_raw(raw: Box<RawValue>) -> Self {
        LazyObject {
            raw: Some(raw),
            map: OnceLock::new(),
            failed: None,
        }
    }

    /// An object that could not be made: `why`.
    pub(super) fn failed(why: String) -> Self {
        LazyObject {
            raw: None,
            map: OnceLock::new(),
            failed: Some(why.into()),
        }
    }

    /// The text as received, while it was not parsed into a map.
    pub(super) fn unparsed(&self) -> Option<&RawValue> {
        match self.map.get() {
            None => self.raw.as_deref(),
            Some(_) => None,
        }
    }

    pub(super) fn map(&self) -> &Map<String, Value> {
        self.map.get_or_init(|| {
            self.raw
                .as_deref()
                .and_then(|raw| serde_json::from_str(raw.get()).ok())
                // Only an object nested past the parser's depth limit fails
                // here: it reads as empty.
                .unwrap_or_default()
        })
    }

    /// The map, to change: the text received no longer applies.
    pub(super) fn map_mut(&mut self) -> &mut Map<String, Value> {
        self.map();
        self.raw = None;
        match self.map.get_mut() {
            Some(map) => map,
            None => unreachable!("the map was read just above"),
        }
    }

    pub(super) fn into_map(self) -> Map<String, Value> {
        self.map();
        self.map.into_inner().unwrap_or_default()
    }

    pub(super) fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let Some(why) = &self.failed {
            return Err(serde::ser::Error::custom(why));
        }
        match &self.raw {
            Some(raw) => raw.serialize(serializer),
            None => self.map().serialize(serializer),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
        field: &str,
    ) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        if !raw.get().starts_with('{') {
            return Err(serde::de::Error::custom(format!(
                "{field} must be an object, found {}",
                raw.get()
            )));
        }
        Ok(LazyObject::from_raw(raw))
    }
}
