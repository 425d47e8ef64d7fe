//! The JIP-3 test vectors (where they live, how to load them) and framed captures built from
//! generated messages.

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use tart_backend::jip3::codec::frame;
use tart_backend::jip3::generate::{Generate, Generator};
use tart_backend::jip3::{
    Dialect, Event, EventFrame, EventStream, FrameCodec, NodeInformation, ProtocolVersion,
    TimedEvent,
};
use tokio_util::codec::Decoder;

/// Core count of the vectors that do not state one: the node_information vector's.
pub const DEFAULT_VECTOR_CORES: u16 = 2;

/// The hand-checked JIP-3 vectors, kept in `tests/vectors/` (a copy of the project's shared
/// vectors, checked against them where they are present). `TART_JIP3_VECTORS` points elsewhere.
pub fn vectors_dir() -> PathBuf {
    let dir = match std::env::var_os("TART_JIP3_VECTORS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors"),
    };
    assert!(
        dir.is_dir(),
        "JIP-3 vectors not found at {}: set TART_JIP3_VECTORS",
        dir.display()
    );
    dir
}

/// One `NAME.hex` + `NAME.json` pair.
pub struct Vector {
    pub name: String,
    pub body: Vec<u8>,
    pub json: serde_json::Value,
}

impl Vector {
    pub fn is_node_information(&self) -> bool {
        self.json["kind"] == "node_information"
    }

    /// The core count the vector was made for (`core_count`, else 2).
    pub fn core_count(&self) -> u16 {
        self.json["core_count"]
            .as_u64()
            .map_or(DEFAULT_VECTOR_CORES, |c| {
                c.try_into().expect("core_count fits u16")
            })
    }

    /// The protocol version the vector was made for (`protocol_version`, else 0).
    pub fn version(&self) -> ProtocolVersion {
        let byte = self.json["protocol_version"].as_u64().unwrap_or(0);
        ProtocolVersion::try_from(u8::try_from(byte).expect("a byte")).expect("a known version")
    }

    /// How the vector's event is read: its version and core count.
    pub fn dialect(&self) -> Dialect {
        Dialect::new(self.version(), self.core_count())
    }
}

pub fn read_hex(name: &str) -> Vec<u8> {
    let path = vectors_dir().join(format!("{name}.hex"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    hex::decode(text.trim()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn read_json(name: &str) -> serde_json::Value {
    let path = vectors_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn load_vector(name: &str) -> Vector {
    Vector {
        name: name.to_owned(),
        body: read_hex(name),
        json: read_json(name),
    }
}

/// Every single-message vector (NodeInformation and events), sorted by name; `stream` and
/// `stream_v1` are whole connections and are left out.
pub fn message_vectors() -> Vec<Vector> {
    let mut names: Vec<String> = std::fs::read_dir(vectors_dir())
        .expect("readable vectors dir")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "hex"))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("stream"))
        .collect();
    names.sort();
    names.iter().map(|name| load_vector(name)).collect()
}

/// The vectors' NodeInformation (C = 2), the usual first message of a test connection.
pub fn vector_node_information() -> NodeInformation {
    NodeInformation::parse(&read_hex("node_information")).expect("node_information vector decodes")
}

/// A NodeInformation with the generator's core count, so its events line up with it.
pub fn generated_node_information(g: &mut Generator) -> NodeInformation {
    NodeInformation::generate(g)
}

/// A random valid timed event of the given discriminator.
pub fn generated_event(discriminator: u8, g: &mut Generator) -> TimedEvent {
    use rand::Rng;
    TimedEvent {
        timestamp: g.rng.random(),
        event: Event::generate(discriminator, g).expect("defined discriminator"),
    }
}

/// A capture: each body framed (`u32 LE` length ++ body), back to back.
pub fn capture(bodies: &[Vec<u8>]) -> Vec<u8> {
    bodies.iter().flat_map(|body| frame(body)).collect()
}

/// Cuts a whole capture into bodies with `FrameCodec`, as the server does, and checks the
/// capture ends on a frame boundary.
pub fn split_frames(bytes: &[u8]) -> Vec<Bytes> {
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::from(bytes);
    let mut bodies = Vec::new();
    while let Some(body) = codec.decode_eof(&mut buf).expect("well-framed capture") {
        bodies.push(body);
    }
    assert!(
        buf.is_empty(),
        "{} bytes left after the last frame",
        buf.len()
    );
    bodies
}

/// Runs a connection's bodies through `EventStream`: the first must be a NodeInformation.
pub fn decode_connection(bodies: &[Bytes]) -> (NodeInformation, Vec<EventFrame>) {
    let (first, rest) = bodies.split_first().expect("at least the NodeInformation");
    let (mut stream, info) = EventStream::start(first).expect("first body is a NodeInformation");
    let frames = rest.iter().map(|body| stream.next(body.clone())).collect();
    (info, frames)
}
