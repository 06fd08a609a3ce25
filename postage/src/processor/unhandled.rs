//! Messages no handler takes: counted, said at WARN once per (type,
//! name) with their sender, and acknowledged or dead-lettered.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use super::failure::Settle;
use crate::message::Message;

/// Messages no handler takes: acknowledged or dead-lettered, and said at
/// WARN once per (type, name).
pub(super) struct Unhandled {
    pub(super) dead_letter: bool,
    /// The (type, name) pairs said already.
    said: Mutex<HashSet<(String, String)>>,
}

/// How many (type, name) pairs without a handler are remembered: past
/// that, new ones are said at DEBUG (a sender making up names cannot grow
/// the set without end).
const UNHANDLED_REMEMBERED: usize = 1024;

impl Unhandled {
    pub(super) fn new(dead_letter: bool) -> Self {
        Unhandled {
            dead_letter,
            said: Mutex::new(HashSet::new()),
        }
    }

    /// Says that `message` from `queue` has no handler (the first time for
    /// its type and name) and how it is settled.
    pub(super) fn settle(&self, message: &Message, queue: &str) -> Settle {
        let first = {
            let mut said = self.said.lock().unwrap_or_else(PoisonError::into_inner);
            said.len() < UNHANDLED_REMEMBERED
                && said.insert((message.kind.clone(), message.name.clone()))
        };
        let outcome = if self.dead_letter {
            "dead-lettered"
        } else {
            "acknowledged and dropped"
        };
        if first {
            tracing::warn!(
                kind = %message.kind,
                name = %message.name,
                category = ?message.category,
                queue,
                sender = %message.sender(),
                "no handler for this message: {outcome} (said once per type and name; see the `unhandled` counter)"
            );
        } else {
            tracing::debug!(kind = %message.kind, name = %message.name, "no handler; {outcome}");
        }
        if self.dead_letter {
            Settle::DeadLetter
        } else {
            Settle::Ack
        }
    }
}
