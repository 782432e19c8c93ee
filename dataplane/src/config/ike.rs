//! `[ike]`: the gateway negotiates its SAs with IKEv2 (RFC 7296) in-band,
//! over its labels, instead of reading keys from its file.
//!
//! ```toml
//! [ike]
//! address = "192.0.2.1"       # this gateway's tunnel address (IKE and ESP)
//! identity = "gw-a"           # an FQDN identity, or an IP address
//! psk_file = "/etc/meshplane/ike.psk"   # hex key, mode 0600, the operator's own
//! # or, instead of psk_file, RFC 7427 signatures with X.509 certificates
//! # (PEM, as `meshplane keys --ike-ca` writes them):
//! # certificate = "/etc/meshplane/ike/gw-a.pem"
//! # private_key = "/etc/meshplane/ike/gw-a.key"   # PKCS#8, mode 0600
//! # ca = "/etc/meshplane/ike/ca.pem"
//! proposals = ["aes128gcm16-prfsha256-x25519", "aes256gcm16-prfsha384-ecp384"]
//! esp_proposals = ["aes128gcm16-esn", "aes256gcm16-esn"]
//! drain_ms = 2000             # how long a replaced inbound SA still decrypts
//! liveness_ms = 30000         # a liveness check on each IKE SA this often (0: none)
//! retransmit_ms = 500         # first retransmission of a request (doubling)
//! retransmit_tries = 6        # sends of a request before its IKE SA is given up
//! lifetime = { hard_seconds = 3600 }    # soft limits default to 90 % of hard
//!
//! [[ike.peer]]
//! address = "192.0.2.2"       # the peer gateway's tunnel address
//! identity = "gw-b"
//! initiate = true             # this gateway starts the IKE SA
//!
//! [[fec]]
//! prefix = "10.2.0.0/16"
//! peer = "192.0.2.2"          # instead of `sa = SPI`: the negotiated Child SA
//! # label, port, next_hop_mac as usual
//! ```
//!
//! The IKE proposals are combined into one offer (every listed algorithm
//! of each kind, in the order first listed), as most IKEv2 gateways do;
//! the ESP ones likewise (an `-esn` suffix offers extended sequence
//! numbers, `-noesn` 32-bit ones, a group such as `-x25519` asks for PFS
//! on rekeys). Nothing here is read at parse time but the file itself:
//! the credentials are read when the node starts
//! ([`super::ike_credentials::read_auth`]).

use super::{echo, ConfigError, Ctx};
use crate::sa::{Lifetime, Limits};
use meshplane_control::ike::{AesGcm, ChildSuite, Group, IkeSuite, Prf};
use serde::Deserialize;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use toml::Spanned;

/// The default IKE proposals.
pub const DEFAULT_PROPOSALS: [&str; 2] = [
    "aes128gcm16-prfsha256-x25519",
    "aes256gcm16-prfsha384-ecp384",
];
/// The default ESP proposals.
pub const DEFAULT_ESP_PROPOSALS: [&str; 2] = ["aes128gcm16-esn", "aes256gcm16-esn"];
/// The default hard lifetime of a Child SA, seconds.
pub const DEFAULT_HARD_SECONDS: u64 = 3600;
/// Soft limits not given are this per cent of their hard limit.
pub const SOFT_PERCENT: u64 = 90;
/// The default drain window of a replaced inbound SA, milliseconds.
pub const DEFAULT_DRAIN_MS: u32 = 2000;
/// The default interval of liveness checks, milliseconds.
pub const DEFAULT_LIVENESS_MS: u32 = 30_000;
/// The default first retransmission interval, milliseconds.
pub const DEFAULT_RETRANSMIT_MS: u32 = 500;
/// The default number of sends of a request.
pub const DEFAULT_RETRANSMIT_TRIES: u32 = 6;
/// Most `[[ike.peer]]` entries.
pub const MAX_PEERS: usize = 256;

/// IKEv2 between gateways (`[ike]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeConfig {
    /// This gateway's tunnel address: IKE runs from it, ESP ends at it.
    pub address: Ipv4Addr,
    /// This gateway's identity (FQDN, or an IP address).
    pub identity: String,
    /// How this gateway authenticates, and checks its peers.
    pub credentials: IkeCredentials,
    /// IKE SA algorithms offered and accepted.
    pub proposals: Vec<IkeSuite>,
    /// Child SA (ESP) algorithms offered and accepted.
    pub esp_proposals: Vec<ChildSuite>,
    /// Limits of every negotiated Child SA.
    pub lifetime: Lifetime,
    /// How long a replaced inbound SA stays after the switch, ms.
    pub drain_ms: u32,
    /// A liveness check on each established IKE SA this often, ms (0:
    /// none): a peer that restarted, or died, is noticed (its IKE SA ends
    /// after the retransmissions) and an initiator starts again.
    pub liveness_ms: u32,
    /// First retransmission interval of a request, ms (it doubles).
    pub retransmit_ms: u32,
    /// Sends of a request before its IKE SA is given up.
    pub retransmit_tries: u32,
    /// The peer gateways.
    pub peers: Vec<IkePeerConfig>,
}

/// The credentials of `[ike]`: a pre-shared key, or a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IkeCredentials {
    /// `psk_file`: the file holding the pre-shared key, in hex.
    Psk(PathBuf),
    /// `certificate`, `private_key`, `ca`: RFC 7427 signatures with this
    /// gateway's certificate and key; peers' certificates must chain to
    /// the CA and name the identity each peer claims.
    Certificate {
        /// This gateway's certificate (PEM).
        certificate: PathBuf,
        /// Its private key (PEM, PKCS#8; the operator's own file).
        private_key: PathBuf,
        /// The CA certificate peers' certificates chain to (PEM).
        ca: PathBuf,
    },
}

impl IkeCredentials {
    /// What `check-config` says of them (paths, never key material).
    pub fn summary(&self) -> String {
        match self {
            IkeCredentials::Psk(p) => format!("pre-shared key from {}", p.display()),
            IkeCredentials::Certificate {
                certificate, ca, ..
            } => format!(
                "certificate {} under CA {}",
                certificate.display(),
                ca.display()
            ),
        }
    }
}

/// One peer gateway (`[[ike.peer]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkePeerConfig {
    /// Its tunnel address.
    pub address: Ipv4Addr,
    /// The identity it must prove.
    pub identity: String,
    /// This gateway starts the IKE SA (and starts it again when it ends).
    pub initiate: bool,
    /// Move to port 4500 and carry ESP in UDP (RFC 3948) even with no
    /// NAT between: what a partner gateway whose ESP only travels over
    /// its IKE sockets needs (`udp_encap`; a NAT found on the way does
    /// the same whatever this says).
    pub udp_encap: bool,
}

impl IkeConfig {
    /// The peer whose tunnel address is `a`.
    pub fn peer(&self, a: Ipv4Addr) -> Option<&IkePeerConfig> {
        self.peers.iter().find(|p| p.address == a)
    }

    /// What `check-config` says of `[ike]`.
    pub fn summary(&self) -> String {
        let peers: Vec<String> = self
            .peers
            .iter()
            .map(|p| {
                format!(
                    "{} ({}{})",
                    p.address,
                    p.identity,
                    if p.initiate { ", initiated here" } else { "" }
                )
            })
            .collect();
        let limits = |l: &Limits| {
            let v: Vec<String> = [
                l.packets.map(|v| format!("{v} packets")),
                l.bytes.map(|v| format!("{v} bytes")),
                l.seconds.map(|v| format!("{v} s")),
            ]
            .into_iter()
            .flatten()
            .collect();
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(", ")
            }
        };
        format!(
            "IKEv2 from {} as {} ({}): peers {}; Child SAs rekeyed at {}, expire at {}; \
             a replaced inbound SA drains for {} ms",
            self.address,
            self.identity,
            self.credentials.summary(),
            if peers.is_empty() {
                "none".to_string()
            } else {
                peers.join(", ")
            },
            limits(&self.lifetime.soft),
            limits(&self.lifetime.hard),
            self.drain_ms
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIke {
    address: Spanned<String>,
    identity: Spanned<String>,
    #[serde(default)]
    psk_file: Option<Spanned<String>>,
    #[serde(default)]
    certificate: Option<Spanned<String>>,
    #[serde(default)]
    private_key: Option<Spanned<String>>,
    #[serde(default)]
    ca: Option<Spanned<String>>,
    #[serde(default)]
    proposals: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    esp_proposals: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    drain_ms: Option<Spanned<i64>>,
    #[serde(default)]
    liveness_ms: Option<Spanned<i64>>,
    #[serde(default)]
    retransmit_ms: Option<Spanned<i64>>,
    #[serde(default)]
    retransmit_tries: Option<Spanned<i64>>,
    #[serde(default)]
    lifetime: Option<super::lifetime::RawLifetime>,
    #[serde(default)]
    peer: Vec<Spanned<RawIkePeer>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIkePeer {
    address: Spanned<String>,
    identity: Spanned<String>,
    #[serde(default)]
    initiate: bool,
    #[serde(default)]
    udp_encap: bool,
}

/// One IKE proposal as written: `aes128gcm16-prfsha256-x25519`.
pub fn parse_ike_proposal(s: &str) -> Result<IkeSuite, String> {
    let parts: Vec<&str> = s.split('-').collect();
    let [e, p, g] = parts[..] else {
        return Err(format!(
            "{} is not ENCRYPTION-PRF-GROUP, e.g. \"aes128gcm16-prfsha256-x25519\"",
            echo(s)
        ));
    };
    Ok(IkeSuite {
        encr: encr(e)?,
        prf: match p {
            "prfsha256" => Prf::HmacSha256,
            "prfsha384" => Prf::HmacSha384,
            _ => return Err(format!("PRF {} is not prfsha256 or prfsha384", echo(p))),
        },
        dh: group(g)?,
    })
}

/// One ESP proposal as written: `aes128gcm16-esn` (`-noesn`, and an
/// optional PFS group, e.g. `aes256gcm16-x25519-esn`).
pub fn parse_esp_proposal(s: &str) -> Result<ChildSuite, String> {
    let mut parts = s.split('-');
    let e = encr(parts.next().unwrap_or_default())?;
    let mut esn = None;
    let mut dh = None;
    for p in parts {
        match p {
            "esn" | "noesn" if esn.is_none() => esn = Some(p == "esn"),
            _ if dh.is_none() && esn.is_none() => dh = Some(group(p)?),
            _ => {
                return Err(format!(
                    "{} is not ENCRYPTION[-GROUP]-esn|noesn, e.g. \"aes128gcm16-esn\"",
                    echo(s)
                ))
            }
        }
    }
    Ok(ChildSuite {
        encr: e,
        esn: esn.unwrap_or(true),
        dh,
    })
}

fn encr(s: &str) -> Result<AesGcm, String> {
    match s {
        "aes128gcm16" => Ok(AesGcm::Aes128),
        "aes256gcm16" => Ok(AesGcm::Aes256),
        _ => Err(format!(
            "encryption {} is not aes128gcm16 or aes256gcm16",
            echo(s)
        )),
    }
}

fn group(s: &str) -> Result<Group, String> {
    match s {
        "x25519" | "curve25519" => Ok(Group::X25519),
        "ecp256" => Ok(Group::P256),
        "ecp384" => Ok(Group::P384),
        _ => Err(format!("group {} is not x25519, ecp256 or ecp384", echo(s))),
    }
}

/// The soft limits not given: [`SOFT_PERCENT`] of the hard limit of their
/// kind; with no limit at all, [`DEFAULT_HARD_SECONDS`].
fn with_defaults(mut l: Lifetime) -> Lifetime {
    if l.hard.is_none() && l.soft.is_none() {
        l.hard.seconds = Some(DEFAULT_HARD_SECONDS);
    }
    let soft =
        |s: Option<u64>, h: Option<u64>| s.or_else(|| h.map(|h| (h * SOFT_PERCENT / 100).max(1)));
    l.soft = Limits {
        packets: soft(l.soft.packets, l.hard.packets),
        bytes: soft(l.soft.bytes, l.hard.bytes),
        seconds: soft(l.soft.seconds, l.hard.seconds),
    };
    // A hard limit of 1 leaves no room below it for a soft one.
    for (s, h) in [
        (&mut l.soft.packets, l.hard.packets),
        (&mut l.soft.bytes, l.hard.bytes),
        (&mut l.soft.seconds, l.hard.seconds),
    ] {
        if s.is_some() && *s >= h && h.is_some() {
            *s = None;
        }
    }
    l
}

/// The proposals `v` lists under `[ike] key`, each read by `parse`, or
/// `defaults` when the key is absent; an empty list is an error.
fn proposal_list<T>(
    cx: &Ctx<'_>,
    v: &Option<Spanned<Vec<Spanned<String>>>>,
    key: &str,
    defaults: &[&str],
    parse: fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, ConfigError> {
    match v {
        None => defaults
            .iter()
            .map(|s| parse(s).map_err(|m| cx.err(0..0, format!("[ike] {key}: {m}"))))
            .collect(),
        Some(l) if l.get_ref().is_empty() => Err(cx.err(
            l.span(),
            format!("[ike] {key} is empty: leave it out for the defaults"),
        )),
        Some(l) => l
            .get_ref()
            .iter()
            .map(|s| parse(s.get_ref()).map_err(|m| cx.err(s.span(), format!("[ike] {key}: {m}"))))
            .collect(),
    }
}

/// `psk_file`, or all of `certificate`, `private_key` and `ca`: exactly
/// one kind of credential.
fn credentials(cx: &Ctx<'_>, r: &RawIke) -> Result<IkeCredentials, ConfigError> {
    let path = |v: &Spanned<String>, key: &str| -> Result<PathBuf, ConfigError> {
        Ok(PathBuf::from(cx.name(v, &format!("[ike] {key}"), 4096)?))
    };
    let certs = [
        ("certificate", &r.certificate),
        ("private_key", &r.private_key),
        ("ca", &r.ca),
    ];
    let given: Vec<&Spanned<String>> = certs.iter().filter_map(|(_, v)| v.as_ref()).collect();
    match (&r.psk_file, given.first()) {
        (Some(p), None) => Ok(IkeCredentials::Psk(path(p, "psk_file")?)),
        (Some(_), Some(c)) => Err(cx.err(
            c.span(),
            "[ike]: either psk_file or certificate, private_key and ca, not both kinds".to_string(),
        )),
        (None, None) => Err(cx.err(
            r.address.span(),
            "[ike]: no credentials: give psk_file, or certificate, private_key and ca".to_string(),
        )),
        (None, Some(first)) => {
            let missing: Vec<&str> = certs
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| *k)
                .collect();
            if !missing.is_empty() {
                return Err(cx.err(
                    first.span(),
                    format!(
                        "[ike]: certificate authentication needs certificate, private_key and \
                         ca; {} missing",
                        missing.join(" and ")
                    ),
                ));
            }
            let get = |i: usize| certs[i].1.as_ref().map(|v| path(v, certs[i].0));
            match (get(0), get(1), get(2)) {
                (Some(certificate), Some(private_key), Some(ca)) => {
                    Ok(IkeCredentials::Certificate {
                        certificate: certificate?,
                        private_key: private_key?,
                        ca: ca?,
                    })
                }
                _ => Err(cx.err(first.span(), "[ike]: credentials incomplete".to_string())),
            }
        }
    }
}

pub(super) fn parse_ike(cx: &Ctx<'_>, r: &RawIke) -> Result<IkeConfig, ConfigError> {
    let address = cx.host_address(&r.address, "[ike] address")?;
    let identity = cx.name(&r.identity, "[ike] identity", 255)?;
    let credentials = credentials(cx, r)?;
    let proposals = proposal_list(
        cx,
        &r.proposals,
        "proposals",
        &DEFAULT_PROPOSALS,
        parse_ike_proposal,
    )?;
    let esp_proposals = proposal_list(
        cx,
        &r.esp_proposals,
        "esp_proposals",
        &DEFAULT_ESP_PROPOSALS,
        parse_esp_proposal,
    )?;
    let drain_ms = match &r.drain_ms {
        None => DEFAULT_DRAIN_MS,
        Some(v) => cx.int(v, "[ike] drain_ms", 0, 600_000, "")?,
    };
    let liveness_ms = match &r.liveness_ms {
        None => DEFAULT_LIVENESS_MS,
        Some(v) => cx.int(v, "[ike] liveness_ms", 0, 86_400_000, " (0: none)")?,
    };
    let retransmit_ms = match &r.retransmit_ms {
        None => DEFAULT_RETRANSMIT_MS,
        Some(v) => cx.int(v, "[ike] retransmit_ms", 1, 60_000, "")?,
    };
    let retransmit_tries = match &r.retransmit_tries {
        None => DEFAULT_RETRANSMIT_TRIES,
        Some(v) => cx.int(v, "[ike] retransmit_tries", 1, 20, "")?,
    };
    let lifetime = match &r.lifetime {
        None => with_defaults(Lifetime::NONE),
        Some(l) => {
            let esn = esp_proposals.iter().all(|p| p.esn);
            with_defaults(super::lifetime::parse_lifetime_of(cx, "[ike]", esn, l)?)
        }
    };
    if r.peer.len() > MAX_PEERS {
        return Err(cx.err(
            r.peer[MAX_PEERS].span(),
            format!("[[ike.peer]]: more than {MAX_PEERS} peers"),
        ));
    }
    let mut peers: Vec<IkePeerConfig> = Vec::with_capacity(r.peer.len());
    let mut seen = std::collections::HashMap::new();
    for p in &r.peer {
        let raw = p.get_ref();
        let a = cx.host_address(&raw.address, "[[ike.peer]] address")?;
        if a == address {
            return Err(cx.err(
                raw.address.span(),
                format!("[[ike.peer]] address {a} is this gateway's own [ike] address"),
            ));
        }
        if let Some(&first) = seen.get(&a) {
            return Err(cx.dup(
                raw.address.span(),
                format!("[[ike.peer]] address {a} is listed twice"),
                first,
            ));
        }
        seen.insert(a, raw.address.span().start);
        peers.push(IkePeerConfig {
            address: a,
            identity: cx.name(&raw.identity, "[[ike.peer]] identity", 255)?,
            initiate: raw.initiate,
            udp_encap: raw.udp_encap,
        });
    }
    Ok(IkeConfig {
        address,
        identity,
        credentials,
        proposals,
        esp_proposals,
        lifetime,
        drain_ms,
        liveness_ms,
        retransmit_ms,
        retransmit_tries,
        peers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;

    const NODE: &str = "[node]\nname = \"gw-a\"\nrole = \"gateway\"\n\n\
        [[ports]]\nname = \"lan0\"\nmac = \"02:00:00:00:00:01\"\n\n\
        [[ports]]\nname = \"up0\"\nmac = \"02:00:00:00:00:02\"\n\n";

    fn parse(tail: &str) -> Result<NodeConfig, crate::config::ConfigError> {
        NodeConfig::parse(&format!("{NODE}{tail}"), "gw.toml")
    }

    const IKE: &str = "[ike]\naddress = \"192.0.2.1\"\nidentity = \"gw-a\"\npsk_file = \"psk\"\n\n\
        [[ike.peer]]\naddress = \"192.0.2.2\"\nidentity = \"gw-b\"\ninitiate = true\n\n";

    #[test]
    fn defaults_offer_the_two_suites_with_esn_and_an_hour() {
        let c = parse(IKE).expect("config");
        let ike = c.ike.expect("[ike]");
        assert_eq!(ike.address, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(
            ike.proposals,
            vec![
                IkeSuite {
                    encr: AesGcm::Aes128,
                    prf: Prf::HmacSha256,
                    dh: Group::X25519
                },
                IkeSuite {
                    encr: AesGcm::Aes256,
                    prf: Prf::HmacSha384,
                    dh: Group::P384
                }
            ]
        );
        assert!(ike.esp_proposals.iter().all(|p| p.esn && p.dh.is_none()));
        assert_eq!(ike.lifetime.hard.seconds, Some(3600));
        assert_eq!(ike.lifetime.soft.seconds, Some(3240));
        assert_eq!(ike.drain_ms, 2000);
        assert_eq!(ike.peers.len(), 1);
        assert!(ike.peers[0].initiate);
        assert_eq!(
            ike.summary(),
            "IKEv2 from 192.0.2.1 as gw-a (pre-shared key from psk): peers 192.0.2.2 (gw-b, initiated here); \
             Child SAs rekeyed at 3240 s, expire at 3600 s; a replaced inbound SA drains for 2000 ms"
        );
        // Without [ike], nothing changes.
        assert!(parse("").expect("config").ike.is_none());
    }

    #[test]
    fn a_fec_may_name_a_peer_instead_of_an_sa() {
        let fec = "[[fec]]\nprefix = \"10.2.0.0/16\"\npeer = \"192.0.2.2\"\nlabel = 1002\n\
                   port = \"up0\"\nnext_hop_mac = \"02:00:00:00:01:01\"\n";
        let c = parse(&format!("{IKE}{fec}")).expect("config");
        assert_eq!(c.fec[0].peer, Some(Ipv4Addr::new(192, 0, 2, 2)));
        // The gateway's tunnel address is its node address.
        assert_eq!(c.node_address(), Some(Ipv4Addr::new(192, 0, 2, 1)));

        let e = parse(&format!("{IKE}{}", fec.replace("192.0.2.2", "192.0.2.9")))
            .expect_err("unknown peer");
        assert_eq!(e.line, 25, "{e}");
        assert!(
            e.msg.contains("peer = \"192.0.2.9\"") && e.msg.contains("[[ike.peer]]"),
            "{e}"
        );
        let e = parse(fec).expect_err("no [ike]");
        assert!(e.msg.contains("[ike]"), "{e}");
        let e =
            parse(&format!("{IKE}{}", fec.replace("peer", "sa = 4097\npeer"))).expect_err("both");
        assert!(e.msg.contains("either"), "{e}");
    }

    #[test]
    fn errors_name_the_line_and_the_key() {
        let e = parse(&IKE.replace(
            "psk_file = \"psk\"\n",
            "psk_file = \"psk\"\nproposals = [\"aes128gcm16-prfsha1-x25519\"]\n",
        ))
        .expect_err("sha1");
        assert_eq!(e.line, 17, "{e}");
        assert!(e.msg.starts_with("[ike] proposals: PRF \"prfsha1\""), "{e}");
        let e = parse(&IKE.replace(
            "psk_file = \"psk\"\n",
            "psk_file = \"psk\"\nlifetime = { soft_seconds = 10, hard_seconds = 5 }\n",
        ))
        .expect_err("soft above hard");
        assert_eq!(e.line, 17, "{e}");
        assert!(e.msg.starts_with("[ike]: lifetime"), "{e}");
        let e = parse(&IKE.replace("192.0.2.2", "192.0.2.1")).expect_err("own");
        assert!(e.msg.contains("own [ike] address"), "{e}");
    }

    #[test]
    fn soft_limits_default_below_the_hard_ones() {
        let c = parse(&IKE.replace(
            "psk_file = \"psk\"\n",
            "psk_file = \"psk\"\nlifetime = { hard_packets = 1000, soft_seconds = 50, hard_seconds = 60 }\n",
        ))
        .expect("config");
        let l = c.ike.expect("ike").lifetime;
        assert_eq!(l.soft.packets, Some(900));
        assert_eq!(l.soft.seconds, Some(50));
        assert_eq!(l.hard.bytes, None);
    }

    #[test]
    fn credentials_are_a_psk_file_or_a_certificate_key_and_ca() {
        let certs = "certificate = \"gw-a.pem\"\nprivate_key = \"gw-a.key\"\nca = \"ca.pem\"\n";
        let c = parse(&IKE.replace("psk_file = \"psk\"\n", certs)).expect("certificates");
        let ike = c.ike.expect("[ike]");
        assert_eq!(
            ike.credentials,
            IkeCredentials::Certificate {
                certificate: PathBuf::from("gw-a.pem"),
                private_key: PathBuf::from("gw-a.key"),
                ca: PathBuf::from("ca.pem"),
            }
        );
        assert!(
            ike.summary()
                .contains("(certificate gw-a.pem under CA ca.pem)"),
            "{}",
            ike.summary()
        );

        let e = parse(&IKE.replace(
            "psk_file = \"psk\"\n",
            &format!("psk_file = \"psk\"\n{certs}"),
        ))
        .expect_err("both kinds");
        assert!(e.msg.contains("either psk_file or certificate"), "{e}");
        let e = parse(&IKE.replace("psk_file = \"psk\"\n", "")).expect_err("none");
        assert!(e.msg.contains("no credentials"), "{e}");
        let e = parse(&IKE.replace(
            "psk_file = \"psk\"\n",
            "certificate = \"gw-a.pem\"\nprivate_key = \"gw-a.key\"\n",
        ))
        .expect_err("no ca");
        assert!(e.msg.contains("ca missing"), "{e}");
        assert_eq!(e.line, 16, "{e}");
        let e =
            parse(&IKE.replace("psk_file = \"psk\"\n", "ca = \"ca.pem\"\n")).expect_err("ca alone");
        assert!(e.msg.contains("certificate and private_key missing"), "{e}");
    }
}
