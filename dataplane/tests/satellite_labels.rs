//! Satellites' node labels end to end: the Starlink-550 nodes between
//! Tokyo's gateway and one satellite, each with the tables its own control
//! agent installs (its own first hops toward every satellite), workers on
//! memory links and its service loop. An LSP trace from the gateway to
//! `sat:ID` names every satellite on the shortest path and the target
//! answers as the egress; an LSP ping reaches it.

use crossbeam::channel::{bounded, Receiver, Sender};
use meshplane::config::{node_address, NodeConfig};
use meshplane::control::service_loop::{node_info, ServiceLoop, ServiceStats};
use meshplane::control::{ControlAgent, OamKind, OamRequest, OamResult};
use meshplane::io::memory::MemoryPort;
use meshplane::runtime::Channels;
use meshplane::tables::Tables;
use meshplane::worker::Worker;
use meshplane_control::routing::{FirstHops, Router};
use meshplane_control::tables::port_name;
use meshplane_control::topology::Topology;
use meshplane_control::{Constellation, Engine, Failures, GroundStations, NodeId, Preset};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

/// Geometry time of the test, seconds after the constellation epoch.
const T0: f64 = 1234.5;
const PREFIX: (Ipv4Addr, u8) = (Ipv4Addr::new(100, 64, 0, 0), 10);

/// A MAC for node `a`'s port toward node `b` (unique per direction).
fn mac(a: NodeId, b: NodeId) -> String {
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:01",
        a >> 8,
        a & 0xff,
        b >> 8,
        b & 0xff
    )
}

/// Node `id`'s configuration with one port toward each of `neighbours`.
fn config(id: NodeId, n_sats: NodeId, neighbours: &[NodeId]) -> NodeConfig {
    let (name, role, node, address) = if id < n_sats {
        (
            format!("sat{id}"),
            "satellite",
            format!("sat:{id}"),
            String::new(),
        )
    } else {
        let a = node_address(PREFIX, id).expect("address");
        (
            format!("gw{id}"),
            "gateway",
            format!("gs:{}", id - n_sats),
            format!("address = \"{a}\"\n"),
        )
    };
    let mut text = format!("[node]\nname = \"{name}\"\nrole = \"{role}\"\n{address}\n");
    for &nb in neighbours {
        text += &format!(
            "[[ports]]\nname = \"{}\"\nmac = \"{}\"\npeer_mac = \"{}\"\n\n",
            port_name(n_sats as usize, nb),
            mac(id, nb),
            mac(nb, id)
        );
    }
    text += &format!(
        "[control]\nconstellation = \"starlink-550\"\nnode = \"{node}\"\nstart_s = {T0:?}\n\
         node_prefix = \"100.64.0.0/10\"\n"
    );
    NodeConfig::parse(&text, &format!("{name}.toml")).expect("config")
}

struct Node {
    worker: Worker<MemoryPort>,
    tables: Tables,
    services: ServiceLoop,
    oam: Sender<OamRequest>,
}

struct Mesh {
    nodes: Vec<Node>,
    now: u64,
}

impl Mesh {
    /// The nodes `links` joins, each with its own agent's first install.
    fn new(n_sats: NodeId, links: &BTreeSet<(NodeId, NodeId)>) -> (Mesh, BTreeMap<NodeId, usize>) {
        let mut neighbours: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
        for &(a, b) in links {
            neighbours.entry(a).or_default().push(b);
            neighbours.entry(b).or_default().push(a);
        }
        let index: BTreeMap<NodeId, usize> = neighbours
            .keys()
            .enumerate()
            .map(|(i, &n)| (n, i))
            .collect();
        // One memory link per ISL/GSL, each end at its node's port.
        let mut ends: BTreeMap<(NodeId, NodeId), MemoryPort> = BTreeMap::new();
        for &(a, b) in links {
            let (pa, pb) = MemoryPort::pair(256);
            ends.insert((a, b), pa);
            ends.insert((b, a), pb);
        }
        let mut nodes = Vec::new();
        for (&id, nbs) in &neighbours {
            let cfg = config(id, n_sats, nbs);
            let mut agent = ControlAgent::new(&cfg).expect("agent");
            let install = agent.poll(0).expect("poll").pop().expect("first install");
            let ports: Vec<MemoryPort> = nbs
                .iter()
                .map(|&nb| ends.remove(&(id, nb)).expect("link end"))
                .collect();
            let channels = Arc::new(Channels::new(1, cfg.punt));
            let mut worker = Worker::new(ports);
            worker.set_punt_path(channels.path(0).expect("worker 0"));
            let (oam, rx): (Sender<OamRequest>, Receiver<OamRequest>) = bounded(4);
            let services = ServiceLoop::new(
                channels,
                node_info(&cfg.name, Some(id), &install.tables),
                agent.address_book().clone(),
                Some(rx),
                Arc::new(ServiceStats::default()),
            );
            nodes.push(Node {
                worker,
                tables: install.tables,
                services,
                oam,
            });
        }
        (
            Mesh {
                nodes,
                now: 1_800_000_000_000_000_000,
            },
            index,
        )
    }

    /// One round of every node: poll, serve, poll again (the injects).
    fn step(&mut self) {
        self.now += 100_000;
        for n in &mut self.nodes {
            n.worker.poll(&n.tables);
            n.services.round(&n.tables, self.now);
            n.worker.poll(&n.tables);
        }
    }

    /// Asks node `i` for a probe and steps until it answers.
    fn probe(&mut self, i: usize, kind: OamKind, to: &str) -> OamResult {
        let (tx, rx) = bounded(1);
        self.nodes[i]
            .oam
            .send(OamRequest {
                kind,
                to: to.into(),
                count: 3,
                max_hops: 30,
                timeout: Duration::from_millis(50),
                interval: Duration::from_millis(10),
                size: 56,
                reply: tx,
            })
            .expect("request");
        for _ in 0..20_000 {
            self.step();
            if let Ok(r) = rx.try_recv() {
                return r;
            }
        }
        panic!("no answer to {kind:?} {to}");
    }
}

/// Follows each node's own first hops from `from` to satellite `to`.
fn first_hop_path(topo: &Topology, from: NodeId, to: NodeId) -> Vec<NodeId> {
    let mut router = Router::new();
    let mut hops = FirstHops::default();
    let mut path = vec![from];
    while *path.last().expect("path") != to {
        router.first_hops_into(topo, *path.last().expect("path"), &mut hops);
        path.push(hops.hop[to as usize]);
        assert!(path.len() < 100, "{path:?}");
    }
    path
}

#[test]
fn lsp_trace_from_a_gateway_names_each_satellite_on_the_way_and_the_target_is_the_egress() {
    let stations = GroundStations::top100();
    let mut engine =
        Engine::new(Constellation::preset(Preset::Starlink550), stations.clone()).expect("engine");
    let topo = engine.topology(T0, &Failures::new()).expect("topology");
    let n = topo.n_sats() as NodeId;
    let gid = stations.find("Tokyo").expect("Tokyo");
    let gw = n + gid;
    // A satellite six hops from the gateway: the forward path by first
    // hops, and each replier's way back to the gateway by the tree toward
    // it (its label): the nodes to bring up.
    let (target, forward) = (0..n)
        .map(|s| (s, first_hop_path(&topo, gw, s)))
        .find(|(_, p)| p.len() == 7)
        .expect("a satellite six hops away");
    let spt = engine.tree(&topo, gid);
    let mut links = BTreeSet::new();
    for w in forward.windows(2) {
        links.insert((w[0].min(w[1]), w[0].max(w[1])));
    }
    for &s in &forward[1..] {
        let back = spt.path_from(s).expect("a way back").nodes;
        for w in back.windows(2) {
            links.insert((w[0].min(w[1]), w[0].max(w[1])));
        }
    }
    let (mut mesh, index) = Mesh::new(n, &links);
    let to = format!("sat:{target}");

    let r = mesh.probe(index[&gw], OamKind::Trace, &to);
    assert_eq!(r.error, None, "{r:?}");
    let got: Vec<(Option<Ipv4Addr>, Option<u8>)> =
        r.hops.iter().map(|h| (h.address, h.return_code)).collect();
    let want: Vec<(Option<Ipv4Addr>, Option<u8>)> = forward[1..]
        .iter()
        .map(|&s| {
            let code = if s == target { 3 } else { 8 };
            (node_address(PREFIX, s), Some(code))
        })
        .collect();
    assert_eq!(
        got, want,
        "the satellites of {forward:?}, then the target as egress"
    );
    let names: Vec<Option<&str>> = r.hops.iter().map(|h| h.node.as_deref()).collect();
    let name = format!("sat{target}");
    assert_eq!(names.last(), Some(&Some(name.as_str())));

    let r = mesh.probe(index[&gw], OamKind::Ping, &to);
    assert_eq!(r.error, None, "{r:?}");
    assert_eq!(r.hops.len(), 3);
    assert!(r.hops.iter().all(|h| h.return_code == Some(3)), "{r:?}");
}
