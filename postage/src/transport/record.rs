//! The record of what a connection declared: exchanges, queues and
//! bindings, replayed in that order after the connection is replaced.
//! Consumers are recorded by their channels.

use crate::topology::{Exchange, Queue};

/// One declared queue: its declaration and the name it got (the broker's,
/// for a server-named queue).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QueueRecord {
    pub(crate) declaration: Queue,
    pub(crate) name: String,
}

/// One binding of a queue (by its current name) to an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BindingRecord {
    pub(crate) queue: String,
    pub(crate) exchange: String,
    pub(crate) key: String,
}

/// What a connection declared, to declare again on a new connection.
#[derive(Debug, Default)]
pub(crate) struct Record {
    exchanges: Vec<Exchange>,
    queues: Vec<QueueRecord>,
    bindings: Vec<BindingRecord>,
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
        match self.queues.iter_mut().find(|q| q.name == name) {
            Some(known) => *known = record,
            None => self.queues.push(record),
        }
    }

    /// A queue bound.
    pub(crate) fn binding(&mut self, queue: &str, exchange: &str, key: &str) {
        let binding = BindingRecord {
            queue: queue.to_owned(),
            exchange: exchange.to_owned(),
            key: key.to_owned(),
        };
        if !self.bindings.contains(&binding) {
            self.bindings.push(binding);
        }
    }

    /// The last consumer of an auto-delete queue went: the broker deleted
    /// the queue and its bindings, so they are not declared again.
    pub(crate) fn consumers_gone(&mut self, queue: &str) {
        let auto_delete = self
            .queues
            .iter()
            .any(|q| q.name == queue && q.declaration.is_auto_delete());
        if auto_delete {
            self.queues.retain(|q| q.name != queue);
            self.bindings.retain(|b| b.queue != queue);
        }
    }

    /// The exchanges, in the order declared.
    pub(crate) fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.clone()
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
        for queue in &mut self.queues {
            if queue.name == old {
                new.clone_into(&mut queue.name);
            }
        }
        for binding in &mut self.bindings {
            if binding.queue == old {
                new.clone_into(&mut binding.queue);
            }
        }
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
        record.binding("amq.gen-1", "events", "a.#");
        record.binding("amq.gen-1", "events", "a.#");
        record.binding("jobs", "events", "job");
        assert_eq!(record.bindings().len(), 2);

        record.renamed("amq.gen-1", "amq.gen-2");
        assert_eq!(record.queues()[0].name, "amq.gen-2");
        assert_eq!(record.bindings()[0].queue, "amq.gen-2");

        // The server-named queue is auto-delete: gone with its consumer.
        record.consumers_gone("amq.gen-2");
        record.consumers_gone("jobs");
        assert_eq!(record.queues().len(), 1);
        assert_eq!(record.queues()[0].name, "jobs");
        assert_eq!(
            record.bindings(),
            [BindingRecord {
                queue: "jobs".into(),
                exchange: "events".into(),
                key: "job".into()
            }]
        );
    }
}
