//! Names and addresses of the constellation's nodes: a gateway by its
//! ground station's name, a satellite by `sat{ID}`, each at its node id
//! in `[control] node_prefix`. What an operator types (`lsp-trace --to
//! London`) becomes an address here, and what a reply carries a name.

use crate::config::{node_address, node_of_address};
use meshplane_control::GroundStations;
use std::net::Ipv4Addr;

/// The constellation's node names and addresses.
#[derive(Clone, Debug)]
pub struct AddressBook {
    stations: GroundStations,
    n_sats: u32,
    prefix: Option<(Ipv4Addr, u8)>,
}

impl AddressBook {
    /// The book of a constellation of `n_sats` satellites and `stations`
    /// whose node addresses lie in `prefix` (None: no derived addresses).
    pub fn new(stations: GroundStations, n_sats: u32, prefix: Option<(Ipv4Addr, u8)>) -> Self {
        AddressBook {
            stations,
            n_sats,
            prefix,
        }
    }

    /// A book that knows no names: every target must be an address.
    pub fn empty() -> Self {
        Self::new(GroundStations::default(), 0, None)
    }

    /// The address of `target`: an IPv4 address as it is, `sat:ID` /
    /// `satID`, `gs:NAME`, or a ground station's name or gid.
    pub fn resolve(&self, target: &str) -> Result<Ipv4Addr, String> {
        let t = target.trim();
        if let Ok(a) = t.parse::<Ipv4Addr>() {
            return Ok(a);
        }
        let prefix = self.prefix.ok_or_else(|| {
            format!("{t:?}: this node has no [control] node_prefix to derive addresses from; give an address")
        })?;
        let sat = t
            .strip_prefix("sat:")
            .or_else(|| t.strip_prefix("sat"))
            .and_then(|s| s.parse::<u32>().ok());
        let id = match sat {
            Some(s) if s < self.n_sats => s,
            Some(s) => {
                return Err(format!(
                    "satellite {s}: the constellation has satellites 0..{}",
                    self.n_sats.saturating_sub(1)
                ))
            }
            None => {
                let name = t.strip_prefix("gs:").unwrap_or(t);
                let gid = self.stations.find(name).map_err(|e| e.to_string())?;
                self.n_sats + gid
            }
        };
        node_address(prefix, id)
            .ok_or_else(|| format!("node {id} has no address in the node prefix"))
    }

    /// The name of the node at `addr`, when it is a node address.
    pub fn name_of(&self, addr: Ipv4Addr) -> Option<String> {
        let id = node_of_address(self.prefix?, addr)?;
        self.name_of_id(id)
    }

    /// The name of node `id`: `sat{ID}` or the ground station's name.
    pub fn name_of_id(&self, id: u32) -> Option<String> {
        if id < self.n_sats {
            return Some(format!("sat{id}"));
        }
        self.stations
            .stations
            .get((id - self.n_sats) as usize)
            .map(|s| s.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_go_both_ways() {
        let book = AddressBook::new(
            GroundStations::top100(),
            1584,
            Some((Ipv4Addr::new(100, 64, 0, 0), 10)),
        );
        let a = book.resolve("sat:17").expect("satellite");
        assert_eq!(a, Ipv4Addr::new(100, 64, 0, 18));
        assert_eq!(book.name_of(a).as_deref(), Some("sat17"));
        let gid = GroundStations::top100().find("London").expect("London");
        let l = book.resolve("London").expect("gateway");
        assert_eq!(
            l,
            node_address((Ipv4Addr::new(100, 64, 0, 0), 10), 1584 + gid).unwrap()
        );
        assert_eq!(book.resolve("gs:London"), Ok(l));
        assert!(book.name_of(l).is_some_and(|n| n.contains("London")));
        assert_eq!(book.resolve("10.0.0.1"), Ok(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(book.resolve("sat:99999").is_err());
        assert!(book.resolve("Atlantis").is_err());
        assert!(AddressBook::empty().resolve("London").is_err());
        assert_eq!(book.name_of(Ipv4Addr::new(8, 8, 8, 8)), None);
    }
}
