//! Who may use the telemetry port. Each rule is off unless configured, but for the per-address
//! handshake rate, whose default still lets a whole network on one host connect at once:
//! - address ranges (`allowed_networks`), checked when a connection is accepted;
//! - connections per address (`max_connections_per_ip`) and new connections per address and
//!   second (`handshakes_per_ip_per_sec`, with a burst of `max_connections`);
//! - Peer IDs (`allowed_peer_ids`) and the chain (`expected_genesis`), checked in the handshake;
//! - one live connection per Peer ID ([`PeerClaims`]): a second one from the same address
//!   replaces the first (a node that reconnected), from another address it is refused while the
//!   first is alive (an impostor cannot take over a running node's name).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ipnet::IpNet;

use crate::config::{list, networks, Config, ConfigError};
use crate::jip3::NodeInformation;

/// The configured rules, parsed once at start-up.
#[derive(Debug, Clone)]
pub struct AccessRules {
    allowed_networks: Vec<IpNet>,
    allowed_peer_ids: HashSet<[u8; 32]>,
    expected_genesis: Option<[u8; 32]>,
    max_per_ip: usize,
    handshakes_per_sec: f64,
    handshake_burst: f64,
}

/// Why a connection was refused before or at its handshake: the metric label.
pub type Refusal = &'static str;

fn hash(key: &str, text: &str) -> Result<[u8; 32], ConfigError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim_start_matches("0x"), &mut out).map_err(|_| {
        ConfigError::Invalid(format!(
            "{key}: `{text}` is not 32 bytes of hex (64 digits)"
        ))
    })?;
    Ok(out)
}

impl AccessRules {
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let allowed_networks = networks("allowed_networks", &config.allowed_networks)?;
        let allowed_peer_ids = list(&config.allowed_peer_ids)
            .map(|id| hash("allowed_peer_ids", id))
            .collect::<Result<_, _>>()?;
        let expected_genesis = match config.expected_genesis.trim() {
            "" => None,
            text => Some(hash("expected_genesis", text)?),
        };
        Ok(AccessRules {
            allowed_networks,
            allowed_peer_ids,
            expected_genesis,
            max_per_ip: config.max_connections_per_ip,
            handshakes_per_sec: f64::from(config.handshakes_per_ip_per_sec),
            handshake_burst: config.max_connections.max(1) as f64,
        })
    }

    /// Checked when a connection is accepted, before anything is read from it.
    pub fn address_allowed(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allowed_networks.is_empty() || self.allowed_networks.iter().any(|n| n.contains(&ip))
    }

    /// Checked once NodeInformation has been read: `None` if the node may go on.
    pub fn handshake_refusal(&self, info: &NodeInformation) -> Option<(Refusal, String)> {
        if !self.allowed_peer_ids.is_empty() && !self.allowed_peer_ids.contains(&info.peer_id.0) {
            return Some((
                "peer_id_not_allowed",
                "its Peer ID is not in allowed_peer_ids".to_owned(),
            ));
        }
        match self.expected_genesis {
            Some(genesis) if genesis != info.genesis_header_hash.0 => Some((
                "wrong_genesis",
                format!(
                    "its genesis header hash {} is not expected_genesis {}",
                    hex::encode(info.genesis_header_hash.0),
                    hex::encode(genesis)
                ),
            )),
            _ => None,
        }
    }
}

/// Per-address state of the listener: open connections and a token bucket of new ones.
#[derive(Debug)]
struct AddressState {
    connections: usize,
    tokens: f64,
    refilled_at: Instant,
}

/// The per-address limits, kept by the listener (one actor: no lock).
#[derive(Debug, Default)]
pub struct AddressLimits {
    addresses: HashMap<IpAddr, AddressState>,
}

impl AddressLimits {
    /// Counts a new connection from `ip`, or says why it is refused.
    pub fn admit(&mut self, rules: &AccessRules, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        let state = self.addresses.entry(ip).or_insert(AddressState {
            connections: 0,
            tokens: rules.handshake_burst,
            refilled_at: now,
        });
        if rules.max_per_ip > 0 && state.connections >= rules.max_per_ip {
            return Err("per_ip_limit");
        }
        if rules.handshakes_per_sec > 0.0 {
            let elapsed = now
                .saturating_duration_since(state.refilled_at)
                .as_secs_f64();
            state.tokens =
                (state.tokens + elapsed * rules.handshakes_per_sec).min(rules.handshake_burst);
            state.refilled_at = now;
            if state.tokens < 1.0 {
                return Err("handshake_rate");
            }
            state.tokens -= 1.0;
        }
        state.connections += 1;
        Ok(())
    }

    /// A connection from `ip` closed. Addresses with nothing open and a full bucket are
    /// forgotten, so the map holds only addresses that matter now.
    pub fn release(&mut self, rules: &AccessRules, ip: IpAddr, now: Instant) {
        if let Some(state) = self.addresses.get_mut(&ip) {
            state.connections = state.connections.saturating_sub(1);
        }
        self.addresses.retain(|_, state| {
            let refill = now
                .saturating_duration_since(state.refilled_at)
                .as_secs_f64()
                * rules.handshakes_per_sec;
            state.connections > 0 || state.tokens + refill < rules.handshake_burst
        });
    }
}

/// What a claim on a Peer ID found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Nobody spoke for the node: this connection does now.
    New,
    /// The node's connection from the same address is replaced (the node reconnected).
    Replaces(u64),
    /// The node is connected from another address, alive: this connection is refused.
    InUseFrom(IpAddr),
}

/// Which connection speaks for each node now, shared by all connections (the handshake decides
/// at once, without a round trip to the listener).
#[derive(Debug, Default)]
pub struct PeerClaims(Mutex<HashMap<Arc<str>, (u64, IpAddr)>>);

impl PeerClaims {
    pub fn claim(&self, node_id: &Arc<str>, connection_id: u64, ip: IpAddr) -> Claim {
        let mut claims = self.0.lock().expect("not poisoned");
        match claims.get(node_id) {
            Some(&(_, other)) if other != ip => Claim::InUseFrom(other),
            held => {
                let claim = held.map_or(Claim::New, |&(old, _)| Claim::Replaces(old));
                claims.insert(node_id.clone(), (connection_id, ip));
                claim
            }
        }
    }

    /// The connection ended: its claim, if it still holds it, is given up.
    pub fn release(&self, node_id: &str, connection_id: u64) {
        let mut claims = self.0.lock().expect("not poisoned");
        if claims
            .get(node_id)
            .is_some_and(|&(id, _)| id == connection_id)
        {
            claims.remove(node_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rules(set: &[(&str, &str)]) -> Result<AccessRules, ConfigError> {
        let overrides: Vec<(String, String)> = set
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        AccessRules::from_config(&Config::load(None, &overrides)?)
    }

    #[test]
    fn networks_and_single_addresses_are_matched_and_bad_entries_refused_at_start() {
        let rules = rules(&[("allowed_networks", "10.0.0.0/8, 192.168.1.7, ::1")]).unwrap();
        assert!(rules.address_allowed("10.2.3.4".parse().unwrap()));
        assert!(rules.address_allowed("192.168.1.7".parse().unwrap()));
        assert!(!rules.address_allowed("192.168.1.8".parse().unwrap()));
        assert!(rules.address_allowed("::1".parse().unwrap()));
        // An IPv4 peer on a dual-stack socket.
        assert!(rules.address_allowed("::ffff:10.0.0.1".parse().unwrap()));
        assert!(super::tests::rules(&[("allowed_networks", "10.0.0.0/33")]).is_err());
        assert!(super::tests::rules(&[("expected_genesis", "abcd")]).is_err());
        let open = super::tests::rules(&[]).unwrap();
        assert!(open.address_allowed("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn per_address_limits_count_connections_and_refill_handshakes() {
        let rules = rules(&[
            ("max_connections_per_ip", "2"),
            ("handshakes_per_ip_per_sec", "1"),
            ("max_connections", "3"),
        ])
        .unwrap();
        let mut limits = AddressLimits::default();
        let (ip, other) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        assert_eq!(limits.admit(&rules, ip, t0), Ok(()));
        assert_eq!(limits.admit(&rules, ip, t0), Ok(()));
        assert_eq!(limits.admit(&rules, ip, t0), Err("per_ip_limit"));
        assert_eq!(limits.admit(&rules, other, t0), Ok(()));
        limits.release(&rules, ip, t0);
        // One token of the burst of 3 is left, then none until a second passes.
        assert_eq!(limits.admit(&rules, ip, t0), Ok(()));
        limits.release(&rules, ip, t0);
        assert_eq!(limits.admit(&rules, ip, t0), Err("handshake_rate"));
        assert_eq!(
            limits.admit(&rules, ip, t0 + Duration::from_secs(1)),
            Ok(())
        );
    }

    #[test]
    fn a_peer_id_is_held_by_one_address_at_a_time() {
        let claims = PeerClaims::default();
        let node: Arc<str> = "ab".repeat(32).into();
        let (home, away) = ("10.0.0.1".parse().unwrap(), "10.9.9.9".parse().unwrap());
        assert_eq!(claims.claim(&node, 1, home), Claim::New);
        assert_eq!(claims.claim(&node, 2, away), Claim::InUseFrom(home));
        assert_eq!(claims.claim(&node, 3, home), Claim::Replaces(1));
        // The replaced connection's end does not free the claim of its successor.
        claims.release(&node, 1);
        assert_eq!(claims.claim(&node, 4, away), Claim::InUseFrom(home));
        claims.release(&node, 3);
        assert_eq!(claims.claim(&node, 5, away), Claim::New);
    }
}
