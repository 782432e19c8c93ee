//! The control thread of a node with `[control]`: runs the node's
//! [`ControlAgent`] on its own (unpinned) thread and publishes each of its
//! installs into the [`TableStore`] the workers read.

use super::table_store::TableStore;
use crate::control::{ControlAgent, Install, InstallReason};
use std::sync::atomic::AtomicBool;

/// Publishes one install. The first install and failure reroutes are
/// logged at `info`; the routine one per step at `debug` (the stats table
/// shows the table epoch every second).
fn publish(store: &TableStore, i: Install, first: bool) {
    let c = i.counts;
    let epoch = store.publish(i.tables);
    macro_rules! log_install {
        ($level:ident) => {
            tracing::$level!(
                table_epoch = epoch,
                label_epoch = i.epoch,
                t_s = format_args!("{:.3}", i.t_s),
                why = i.reason.name(),
                fec = c.fec,
                lfib = c.lfib,
                no_port = c.no_port,
                no_sa = c.no_sa,
                "routes installed"
            )
        };
    }
    if first || i.reason == InstallReason::Failure {
        log_install!(info);
    } else {
        log_install!(debug);
    }
}

/// Computes and publishes the tables due now, before any worker starts,
/// so that the node forwards from its first frame.
pub fn install_initial(agent: &mut ControlAgent, store: &TableStore) {
    let now = agent.clock().now_ns();
    match agent.poll(now) {
        Ok(installs) => installs.into_iter().for_each(|i| publish(store, i, true)),
        Err(e) => tracing::error!("control: first routes: {e}"),
    }
}

/// The control thread's body: follows the schedule until `stop`.
pub fn control_loop(mut agent: ControlAgent, store: &TableStore, stop: &AtomicBool) {
    agent.run(stop, |i| publish(store, i, false));
}
