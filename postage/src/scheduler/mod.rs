//! Running components: the [`Scheduler`] runs many processors and tasks,
//! turns SIGINT / SIGTERM into a graceful shutdown, and restarts the
//! process in place for `restart` (Unix).
//!
//! | file | holds |
//! |---|---|
//! | `tasks` | [`Scheduler`] |
//! | `shutdown` | [`Shutdown`], [`ShutdownHandle`] |
//! | `signals` | SIGINT / SIGTERM (Ctrl-C where there are no Unix signals) |
//! | `restart` | [`restart_process`] |

mod restart;
mod shutdown;
mod signals;
mod tasks;

pub use restart::restart_process;
pub use shutdown::{Shutdown, ShutdownHandle};
pub use tasks::{DEFAULT_SHUTDOWN_TIMEOUT, Scheduler};
