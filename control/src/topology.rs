//! The network graph at one instant: +Grid ISLs that are usable (chord above
//! 80 km, both ends up, not administratively failed) and ground-to-satellite
//! links within the preset's slant range (or above a minimum elevation).
//!
//! Node ids: satellites `0..N`, ground station `gid` is `N + gid`.

use crate::constellation::{Constellation, EARTH_RADIUS_M, MIN_ISL_CHORD_ALTITUDE_M};
use crate::ground::{up_vector, GroundStations};
use crate::propagate::{dist2, Ecef};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A node of the network: satellite `0..N`, ground station `N + gid`.
pub type NodeId = u32;

/// Administrative failures: links and satellites taken out of service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Failures {
    isls: BTreeSet<(u32, u32)>,
    satellites: BTreeSet<u32>,
    /// (satellite, ground station gid).
    gsls: BTreeSet<(u32, u32)>,
}

impl Failures {
    /// No failures.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the ISL between satellites `a` and `b` down.
    pub fn fail_isl(&mut self, a: u32, b: u32) {
        self.isls.insert((a.min(b), a.max(b)));
    }

    /// Brings the ISL between `a` and `b` back.
    pub fn restore_isl(&mut self, a: u32, b: u32) {
        self.isls.remove(&(a.min(b), a.max(b)));
    }

    /// Takes satellite `s` down (all its ISLs and GSLs).
    pub fn fail_satellite(&mut self, s: u32) {
        self.satellites.insert(s);
    }

    /// Brings satellite `s` back.
    pub fn restore_satellite(&mut self, s: u32) {
        self.satellites.remove(&s);
    }

    /// Takes the link between satellite `sat` and ground station `gid`
    /// down (while the satellite is in view, it is not used).
    pub fn fail_gsl(&mut self, sat: u32, gid: u32) {
        self.gsls.insert((sat, gid));
    }

    /// Brings the link between `sat` and ground station `gid` back.
    pub fn restore_gsl(&mut self, sat: u32, gid: u32) {
        self.gsls.remove(&(sat, gid));
    }

    /// True if the link between `sat` and ground station `gid` is down.
    pub fn gsl_down(&self, sat: u32, gid: u32) -> bool {
        self.gsls.contains(&(sat, gid))
    }

    /// True if the ISL `a`-`b` is administratively down.
    pub fn isl_down(&self, a: u32, b: u32) -> bool {
        self.isls.contains(&(a.min(b), a.max(b)))
    }

    /// True if satellite `s` is administratively down.
    pub fn satellite_down(&self, s: u32) -> bool {
        self.satellites.contains(&s)
    }

    /// True if nothing is failed.
    pub fn is_empty(&self) -> bool {
        self.isls.is_empty() && self.satellites.is_empty() && self.gsls.is_empty()
    }
}

/// Which ground-to-satellite links exist.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GslRule {
    /// Slant range at most this many metres (the presets' rule).
    MaxRange(f64),
    /// Satellite at least this many degrees above the local horizon.
    MinElevationDeg(f64),
}

/// The fixed part of the graph: ISL adjacency (CSR) and ground positions.
/// Built once per constellation and station set; [`Network::at`] adds the
/// geometry of one instant.
#[derive(Clone, Debug)]
pub struct Network {
    n_sats: usize,
    isl_off: Arc<[u32]>,
    isl_nbr: Arc<[u32]>,
    gs_pos: Vec<Ecef>,
    gs_up: Vec<Ecef>,
    rule: GslRule,
}

impl Network {
    /// The graph of a constellation and ground-station set, with the
    /// constellation's GSL range.
    pub fn new(c: &Constellation, g: &GroundStations) -> Self {
        Self::with_rule(c, g, GslRule::MaxRange(c.max_gsl_length_m))
    }

    /// As [`Network::new`] with another GSL rule.
    pub fn with_rule(c: &Constellation, g: &GroundStations, rule: GslRule) -> Self {
        let n = c.len();
        let mut deg = vec![0u32; n + 1];
        for &(a, b) in &c.isls {
            if (a as usize) < n && (b as usize) < n && a != b {
                deg[a as usize] += 1;
                deg[b as usize] += 1;
            }
        }
        let mut isl_off = vec![0u32; n + 1];
        for i in 0..n {
            isl_off[i + 1] = isl_off[i] + deg[i];
        }
        let mut fill = isl_off.clone();
        let mut isl_nbr = vec![0u32; isl_off[n] as usize];
        for &(a, b) in &c.isls {
            if (a as usize) < n && (b as usize) < n && a != b {
                isl_nbr[fill[a as usize] as usize] = b;
                fill[a as usize] += 1;
                isl_nbr[fill[b as usize] as usize] = a;
                fill[b as usize] += 1;
            }
        }
        Self {
            n_sats: n,
            isl_off: isl_off.into(),
            isl_nbr: isl_nbr.into(),
            gs_pos: g.stations.iter().map(|s| s.ecef).collect(),
            gs_up: g
                .stations
                .iter()
                .map(|s| up_vector(s.latitude_deg, s.longitude_deg))
                .collect(),
            rule,
        }
    }

    /// Number of satellites.
    pub fn n_sats(&self) -> usize {
        self.n_sats
    }

    /// Number of ground stations.
    pub fn n_gs(&self) -> usize {
        self.gs_pos.len()
    }

    /// Positions of the ground stations.
    pub fn gs_positions(&self) -> &[Ecef] {
        &self.gs_pos
    }

    /// The topology with satellites at `sat_pos` (Earth-fixed metres).
    pub fn at(&self, t_s: f64, sat_pos: Vec<Ecef>, failures: &Failures) -> Topology {
        let n = self.n_sats;
        let sat_up: Vec<bool> = (0..n as u32).map(|s| !failures.satellite_down(s)).collect();
        let mut isl_len = vec![f64::INFINITY; self.isl_nbr.len()];
        let min_r = EARTH_RADIUS_M + MIN_ISL_CHORD_ALTITUDE_M;
        let any_failed = !failures.is_empty();
        for a in 0..n {
            if !sat_up[a] {
                continue;
            }
            let r = self.isl_off[a] as usize..self.isl_off[a + 1] as usize;
            for (&b, len) in self.isl_nbr[r.clone()].iter().zip(&mut isl_len[r]) {
                let b = b as usize;
                if !sat_up[b] || (any_failed && failures.isl_down(a as u32, b as u32)) {
                    continue;
                }
                if chord_min_radius(&sat_pos[a], &sat_pos[b]) >= min_r {
                    *len = dist2(&sat_pos[a], &sat_pos[b]).sqrt();
                }
            }
        }
        let min_isl_m = isl_len.iter().copied().fold(f64::INFINITY, f64::min);
        let g = self.gs_pos.len();
        let mut gsl_off = Vec::with_capacity(g + 1);
        let mut gsl_sat = Vec::with_capacity(g * 32);
        let mut gsl_len = Vec::with_capacity(g * 32);
        gsl_off.push(0u32);
        let any_gsl_failed = !failures.gsls.is_empty();
        let usable = |s: usize, gid: usize| {
            sat_up[s] && !(any_gsl_failed && failures.gsl_down(s as u32, gid as u32))
        };
        for (gid, (gp, up)) in self.gs_pos.iter().zip(&self.gs_up).enumerate() {
            match self.rule {
                GslRule::MaxRange(max) => {
                    let max2 = max * max;
                    for (s, sp) in sat_pos.iter().enumerate() {
                        if (sp[2] - gp[2]).abs() > max || !usable(s, gid) {
                            continue;
                        }
                        let d2 = dist2(gp, sp);
                        if d2 <= max2 {
                            gsl_sat.push(s as u32);
                            gsl_len.push(d2.sqrt());
                        }
                    }
                }
                GslRule::MinElevationDeg(el) => {
                    let sin_min = el.to_radians().sin();
                    for (s, sp) in sat_pos.iter().enumerate() {
                        if !usable(s, gid) {
                            continue;
                        }
                        let v = [sp[0] - gp[0], sp[1] - gp[1], sp[2] - gp[2]];
                        let d = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
                        let h = v[0] * up[0] + v[1] * up[1] + v[2] * up[2];
                        if h >= sin_min * d {
                            gsl_sat.push(s as u32);
                            gsl_len.push(d);
                        }
                    }
                }
            }
            gsl_off.push(gsl_sat.len() as u32);
        }
        Topology {
            t_s,
            n_sats: n,
            sat_pos,
            isl_off: Arc::clone(&self.isl_off),
            isl_nbr: Arc::clone(&self.isl_nbr),
            isl_len,
            min_isl_m,
            gsl_off,
            gsl_sat,
            gsl_len,
        }
    }
}

/// The network at one instant. Edge lengths are in metres; an ISL that is
/// down has length `f64::INFINITY`.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Seconds since the constellation epoch.
    pub t_s: f64,
    n_sats: usize,
    /// Earth-fixed satellite positions in metres, index = satellite id.
    pub sat_pos: Vec<Ecef>,
    isl_off: Arc<[u32]>,
    isl_nbr: Arc<[u32]>,
    isl_len: Vec<f64>,
    min_isl_m: f64,
    gsl_off: Vec<u32>,
    gsl_sat: Vec<u32>,
    gsl_len: Vec<f64>,
}

impl Topology {
    /// Length of the shortest usable ISL (infinite if there is none).
    pub fn min_isl_m(&self) -> f64 {
        self.min_isl_m
    }

    /// Number of satellites `N`.
    pub fn n_sats(&self) -> usize {
        self.n_sats
    }

    /// Number of ground stations.
    pub fn n_gs(&self) -> usize {
        self.gsl_off.len() - 1
    }

    /// Number of nodes (satellites and ground stations).
    pub fn n_nodes(&self) -> usize {
        self.n_sats + self.n_gs()
    }

    /// Node id of ground station `gid`.
    pub fn gs_node(&self, gid: u32) -> NodeId {
        self.n_sats as u32 + gid
    }

    /// True if `node` is a ground station.
    pub fn is_ground(&self, node: NodeId) -> bool {
        node as usize >= self.n_sats
    }

    /// ISL neighbours of satellite `s` with lengths (infinite when down).
    #[inline]
    pub fn isl_neighbors(&self, s: usize) -> (&[u32], &[f64]) {
        let r = self.isl_off[s] as usize..self.isl_off[s + 1] as usize;
        (&self.isl_nbr[r.clone()], &self.isl_len[r])
    }

    /// Satellites in view of ground station `gid`, with slant ranges.
    #[inline]
    pub fn gsl_of(&self, gid: usize) -> (&[u32], &[f64]) {
        let r = self.gsl_off[gid] as usize..self.gsl_off[gid + 1] as usize;
        (&self.gsl_sat[r.clone()], &self.gsl_len[r])
    }

    /// Usable ISLs as `(a, b, length_m)` with `a < b`.
    pub fn isls(&self) -> impl Iterator<Item = (u32, u32, f64)> + '_ {
        (0..self.n_sats).flat_map(move |a| {
            let (nb, len) = self.isl_neighbors(a);
            nb.iter()
                .zip(len)
                .filter(move |(&b, l)| (a as u32) < b && l.is_finite())
                .map(move |(&b, &l)| (a as u32, b, l))
        })
    }

    /// Length of the usable link between two nodes, if there is one.
    pub fn link_length(&self, a: NodeId, b: NodeId) -> Option<f64> {
        let n = self.n_sats as u32;
        match (a < n, b < n) {
            (true, true) => {
                let (nb, len) = self.isl_neighbors(a as usize);
                nb.iter()
                    .zip(len)
                    .find(|(&x, l)| x == b && l.is_finite())
                    .map(|(_, &l)| l)
            }
            (true, false) | (false, true) => {
                let (s, g) = if a < n { (a, b - n) } else { (b, a - n) };
                if g as usize >= self.n_gs() {
                    return None;
                }
                let (sats, len) = self.gsl_of(g as usize);
                sats.iter().position(|&x| x == s).map(|i| len[i])
            }
            (false, false) => None,
        }
    }
}

fn chord_min_radius(p: &Ecef, q: &Ecef) -> f64 {
    let d = [q[0] - p[0], q[1] - p[1], q[2] - p[2]];
    let dd = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
    let t = if dd > 0.0 {
        (-(p[0] * d[0] + p[1] * d[1] + p[2] * d[2]) / dd).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let c = [p[0] + t * d[0], p[1] + t * d[1], p[2] + t * d[2]];
    (c[0] * c[0] + c[1] * c[1] + c[2] * c[2]).sqrt()
}
