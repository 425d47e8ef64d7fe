//! Random but valid values of every JIP-3 type. The property tests round-trip them, and the node
//! simulator sends them (`--all-types`), so both exercise the same encoder the server decodes.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::wire::{Dialect, ProtocolVersion};

/// A seeded source of values, carrying what a connection's NodeInformation fixes: the core
/// count that sizes `[u8; C]` fields and the protocol version that shapes event 61.
pub struct Generator {
    pub rng: StdRng,
    core_count: u16,
    version: ProtocolVersion,
}

impl Generator {
    /// A generator for protocol version 1, what the reference node sends today.
    pub fn new(seed: u64, core_count: u16) -> Self {
        Generator {
            rng: StdRng::seed_from_u64(seed),
            core_count,
            version: ProtocolVersion::V1,
        }
    }

    pub fn with_version(mut self, version: ProtocolVersion) -> Self {
        self.version = version;
        self
    }

    pub fn core_count(&self) -> u16 {
        self.core_count
    }

    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// How the values made here are read back.
    pub fn dialect(&self) -> Dialect {
        Dialect::new(self.version, self.core_count)
    }

    /// A list length: usually short, sometimes 128 or more so `len++` prefixes take two bytes.
    pub fn list_len(&mut self) -> usize {
        if self.rng.random_ratio(1, 16) {
            self.rng.random_range(120..200)
        } else {
            self.rng.random_range(0..4)
        }
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.rng.random()).collect()
    }
}

/// A type that can produce a random valid value of itself.
pub trait Generate {
    fn generate(g: &mut Generator) -> Self;
}

macro_rules! generate_int {
    ($($ty:ty),*) => {$(
        impl Generate for $ty {
            fn generate(g: &mut Generator) -> Self {
                // Mix small values with full-range ones so both short and wide forms appear.
                if g.rng.random() { g.rng.random_range(0..200) } else { g.rng.random() }
            }
        }
    )*};
}
generate_int!(u8, u16, u32, u64);

impl Generate for bool {
    fn generate(g: &mut Generator) -> Self {
        g.rng.random()
    }
}

impl<T: Generate> Generate for Option<T> {
    fn generate(g: &mut Generator) -> Self {
        g.rng.random::<bool>().then(|| T::generate(g))
    }
}

impl<T: Generate> Generate for Vec<T> {
    fn generate(g: &mut Generator) -> Self {
        let len = g.list_len();
        (0..len).map(|_| T::generate(g)).collect()
    }
}
