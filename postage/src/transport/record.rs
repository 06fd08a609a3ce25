//! The record of what a connection declared: exchanges, queues and
//! bindings, replayed in that order after the connection is replaced.
//! Consumers are recorded by their channels.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use crate::topology::{Exchange, Queue};

/// One declared queue: its declaration and the name it got (the broker's,
/// for a server-named queue).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QueueRecord {
    pub(crate) declaration: Queue,
    pub(crate) name: String,
}

/// One binding of a queue (by its current name) or of an exchange to an
/// exchange.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BindingRecord {
    pub(crate) destination: String,
    pub(crate) to_exchange: bool,
    pub(crate) exchange: String,
    pub(crate) key: String,
    pub(crate) arguments: BTreeMap<String, Value>,
}

impl BindingRecord {
    fn identity(&self) -> (String, bool, String, String) {
        (
            self.destination.clone(),
            self.to_exchange,
            self.exchange.clone(),
            self.key.clone(),
        )
    }
}

/// What a connection declared, to declare again on a new connection.
#[derive(Debug, Default)]
pub(crate) struct Record {
    exchanges: Vec<Exchange>,
    queues: Vec<QueueRecord>,
    /// Where each queue is in `queues`.
    queue_index: HashMap<String, usize>,
    bindings: Vec<BindingRecord>,
    /// (destination, to an exchange, exchange, key) of every binding.
    binding_keys: HashSet<(String, bool, String, String)>,
    /// The first name of each server-named queue declared again since
    /// (the name its consumers know it by), with the name it has now.
    former_names: HashMap<String, String>,
}

impl Record {
    /// An exchange declared (a redeclaration replaces the earlier one; a
    /// passive declaration only checks, and is not replayed).
    pub(crate) fn exchange(&mut self, exchange: &Exchange) {
        if exchange.is_passive() || exchange.is_default() {
            return;
        }
        match self
            .exchanges
            .iter_mut()
            .find(|e| e.name() == exchange.name())
        {
            Some(known) => *known = exchange.clone(),
            None => self.exchanges.push(exchange.clone()),
        }
    }

    /// A queue declared, under the name it got.
    pub(crate) fn queue(&mut self, declaration: &Queue, name: &str) {
        let record = QueueRecord {
            declaration: declaration.clone(),
            name: name.to_owned(),
        };
        match self.queue_index.get(name) {
            Some(&index) => self.queues[index] = record,
            None => {
                self.queue_index.insert(name.to_owned(), self.queues.len());
                self.queues.push(record);
            }
        }
    }

    /// After queues or bindings were removed or renamed.
    fn reindex(&mut self) {
        self.queue_index = self
            .queues
            .iter()
            .enumerate()
            .map(|(index, q)| (q.name.clone(), index))
            .collect();
        self.binding_keys = self.bindings.iter().map(BindingRecord::identity).collect();
    }

    /// A queue (or, `to_exchange`, an exchange) bound.
    pub(crate) fn binding(
        &mut self,
        destination: &str,
        to_exchange: bool,
        exchange: &str,
        key: &str,
        arguments: &BTreeMap<String, Value>,
    ) {
        let binding = BindingRecord {
            destination: destination.to_owned(),
            to_exchange,
            exchange: exchange.to_owned(),
            key: key.to_owned(),
            arguments: arguments.clone(),
        };
        // A binding made again (with the same arguments) is one binding.
        if self.binding_keys.insert(binding.identity()) || !self.bindings.contains(&binding) {
            self.bindings.push(binding);
        }
    }

    /// A binding removed.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn unbound(&mut self, destination: &str, exchange: &str, key: &str) {
        self.bindings
            .retain(|b| !(b.destination == destination && b.exchange == exchange && b.key == key));
        self.reindex();
    }

    /// A queue deleted: neither it nor its bindings are declared again.
    pub(crate) fn forget_queue(&mut self, queue: &str) {
        if !self.queue_index.contains_key(queue) {
            return;
        }
        self.queues.retain(|q| q.name != queue);
        self.bindings
            .retain(|b| b.to_exchange || b.destination != queue);
        self.former_names.retain(|_, now| now != queue);
        self.reindex();
    }

    /// An exchange deleted, with the bindings from and to it.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn forget_exchange(&mut self, exchange: &str) {
        self.exchanges.retain(|e| e.name() != exchange);
        self.bindings
            .retain(|b| b.exchange != exchange && !(b.to_exchange && b.destination == exchange));
    }

    /// The last consumer of an auto-delete queue went: the broker deleted
    /// the queue and its bindings, so they are not declared again.
    pub(crate) fn consumers_gone(&mut self, queue: &str) {
        let auto_delete = self
            .queue_index
            .get(queue)
            .is_some_and(|&index| self.queues[index].declaration.is_auto_delete());
        if auto_delete {
            self.forget_queue(queue);
        }
    }

    /// What declaring `queue` again takes: its declaration, the exchanges
    /// recorded that its bindings name, and its bindings; `None` when
    /// the queue is not recorded (declared elsewhere, or passive).
    pub(crate) fn queue_topology(
        &self,
        queue: &str,
    ) -> Option<(QueueRecord, Vec<Exchange>, Vec<BindingRecord>)> {
        let record = self.queues.get(*self.queue_index.get(queue)?)?.clone();
        let bindings: Vec<BindingRecord> = self
            .bindings
            .iter()
            .filter(|b| !b.to_exchange && b.destination == queue)
            .cloned()
            .collect();
        let exchanges = self
            .exchanges
            .iter()
            .filter(|e| bindings.iter().any(|b| b.exchange == e.name()))
            .cloned()
            .collect();
        Some((record, exchanges, bindings))
    }

    /// The exchanges, in the order declared.
    pub(crate) fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.clone()
    }

    /// The name a queue has now: its own, or the one a server-named queue
    /// got when it was declared again (once or more) under another name.
    pub(crate) fn current_name<'a>(&'a self, queue: &'a str) -> &'a str {
        self.former_names.get(queue).map_or(queue, String::as_str)
    }

    /// The queues, in the order declared.
    pub(crate) fn queues(&self) -> Vec<QueueRecord> {
        self.queues.clone()
    }

    /// The bindings, in the order made.
    pub(crate) fn bindings(&self) -> Vec<BindingRecord> {
        self.bindings.clone()
    }

    /// A server-named queue declared again got a new name: its bindings
    /// follow it.
    pub(crate) fn renamed(&mut self, old: &str, new: &str) {
        match self.former_names.values_mut().find(|now| *now == old) {
            Some(now) => new.clone_into(now),
            None => {
                self.former_names.insert(old.to_owned(), new.to_owned());
            }
        }
        for queue in &mut self.queues {
            if queue.name == old {
                new.clone_into(&mut queue.name);
            }
        }
        for binding in &mut self.bindings {
            if !binding.to_exchange && binding.destination == old {
                new.clone_into(&mut binding.destination);
            }
        }
        self.reindex();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::ExchangeKind;

    #[test]
    fn what_was_declared_is_recorded_once_and_follows_renames() {
        let mut record = Record::default();
        let events = Exchange::new("events", ExchangeKind::Topic);
        record.exchange(&events);
        record.exchange(&events.clone().durable(false));
        record.exchange(&Exchange::new("checked", ExchangeKind::Direct).passive(true));
        record.exchange(&Exchange::new("", ExchangeKind::Direct));
        assert_eq!(record.exchanges(), [events.durable(false)]);

        let private = Queue::server_named();
        record.queue(&private, "amq.gen-1");
        record.queue(&Queue::new("jobs").durable(true), "jobs");
        let none = BTreeMap::new();
        record.binding("amq.gen-1", false, "events", "a.#", &none);
        record.binding("amq.gen-1", false, "events", "a.#", &none);
        record.binding("jobs", false, "events", "job", &none);
        assert_eq!(record.bindings().len(), 2);

        record.renamed("amq.gen-1", "amq.gen-2");
        assert_eq!(record.queues()[0].name, "amq.gen-2");
        assert_eq!(record.bindings()[0].destination, "amq.gen-2");
        record.renamed("amq.gen-2", "amq.gen-3");
        assert_eq!(record.current_name("amq.gen-1"), "amq.gen-3");
        assert_eq!(record.current_name("jobs"), "jobs");

        let (queue, exchanges, bindings) = record.queue_topology("jobs").unwrap();
        assert_eq!(queue.declaration, Queue::new("jobs").durable(true));
        assert_eq!(exchanges.len(), 1);
        assert_eq!(bindings.len(), 1);
        assert!(record.queue_topology("elsewhere").is_none());

        // The server-named queue is auto-delete: gone with its consumer.
        record.consumers_gone("amq.gen-3");
        record.consumers_gone("jobs");
        assert_eq!(record.current_name("amq.gen-1"), "amq.gen-1");
        assert_eq!(record.queues().len(), 1);
        assert_eq!(record.queues()[0].name, "jobs");
        assert_eq!(
            record.bindings(),
            [BindingRecord {
                destination: "jobs".into(),
                to_exchange: false,
                exchange: "events".into(),
                key: "job".into(),
                arguments: BTreeMap::new(),
            }]
        );
    }
}
