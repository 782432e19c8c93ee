//! The control thread of a node with `[control]`: runs the node's
//! [`ControlAgent`] on its own (unpinned) thread and publishes each of its
//! installs into the [`TableStore`] the workers read.

use super::table_store::TableStore;
use crate::control::{ControlAgent, Install, InstallCounts, InstallReason, RouteChange};
use std::sync::atomic::AtomicBool;

/// Publishes one install and logs it (see [`log_install`]).
fn publish(store: &TableStore, i: Install, first: bool) -> u64 {
    let Install {
        tables,
        epoch,
        t_s,
        counts,
        reason,
        changes,
    } = i;
    let table_epoch = store.publish(tables);
    log_install(
        &Installed {
            table_epoch,
            label_epoch: epoch,
            t_s,
            counts,
            reason,
            changes,
        },
        first,
    );
    table_epoch
}

/// What an install put in place, for the log.
struct Installed {
    table_epoch: u64,
    label_epoch: u64,
    t_s: f64,
    counts: InstallCounts,
    reason: InstallReason,
    changes: Vec<RouteChange>,
}

/// Logs one install: every change of next hop toward an egress gateway at
/// `info` (label epoch, old and new port); the summary of the first
/// install and of failure reroutes at `info`, of the routine refresh each
/// step at `debug` (the stats table shows the table epoch every second).
fn log_install(i: &Installed, first: bool) {
    for change in &i.changes {
        tracing::info!(
            label_epoch = i.label_epoch,
            why = i.reason.name(),
            "{change}"
        );
    }
    let c = i.counts;
    macro_rules! log_install {
        ($level:ident) => {
            tracing::$level!(
                table_epoch = i.table_epoch,
                label_epoch = i.label_epoch,
                t_s = format_args!("{:.3}", i.t_s),
                why = i.reason.name(),
                fec = c.fec,
                lfib = c.lfib,
                sat_lfib = c.sat_lfib,
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
        Ok(installs) => installs.into_iter().for_each(|i| {
            publish(store, i, true);
        }),
        Err(e) => tracing::error!("control: first routes: {e}"),
    }
}

/// The control thread's body: follows the schedule until `stop`.
///
/// Route computation is background work with a lead time: the thread
/// yields to the workers and to the service thread (BFD) on a busy host
/// (niceness about 10). Every node computes at the same step boundaries,
/// so on a host shared by many nodes their computations would otherwise
/// stall the frames that carry BFD.
pub fn control_loop(mut agent: ControlAgent, store: &TableStore, stop: &AtomicBool) {
    let below_workers = thread_priority::ThreadPriorityValue::try_from(25u8)
        .map(thread_priority::ThreadPriority::Crossplatform);
    if let Ok(p) = below_workers {
        if let Err(e) = thread_priority::set_current_thread_priority(p) {
            tracing::debug!("control thread keeps its priority: {e:?}");
        }
    }
    agent.run(stop, |i| publish(store, i, false));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Log lines at `info` and above while `f` runs.
    fn info_lines(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .map_err(|_| std::io::ErrorKind::Other)?
                    .extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = sink.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn installed(reason: InstallReason, changes: Vec<RouteChange>) -> Installed {
        Installed {
            table_epoch: 7,
            label_epoch: 3,
            t_s: 0.3,
            counts: InstallCounts::default(),
            reason,
            changes,
        }
    }

    #[test]
    fn a_change_of_next_hop_is_logged_at_info_a_refresh_is_not() {
        let moved = RouteChange {
            egress_gid: 12,
            old: Some("isl6".into()),
            new: Some("isl7".into()),
        };
        let log =
            info_lines(|| log_install(&installed(InstallReason::Scheduled, vec![moved]), false));
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 1, "{log}");
        assert!(lines[0].contains("INFO"), "{log}");
        assert!(
            lines[0].contains("egress gateway 12: next hop isl6 -> isl7"),
            "{log}"
        );
        assert!(lines[0].contains("label_epoch=3"), "{log}");

        let log = info_lines(|| log_install(&installed(InstallReason::Scheduled, vec![]), false));
        assert_eq!(log, "", "a refresh without changes at info");
        let log = info_lines(|| log_install(&installed(InstallReason::Scheduled, vec![]), true));
        assert!(log.contains("routes installed"), "{log}");
    }
}
