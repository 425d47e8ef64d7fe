//! Accepts node connections on the telemetry port, enforces the connection cap and the
//! per-address rules (see `access`), starts one `Connection` actor per socket, and closes a
//! node's older connection when the node reconnects.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::access::AddressLimits;
use super::connection::{Close, CloseReason, Connection};
use super::IngestContext;
use crate::log_throttle::LogThrottle;

pub struct Listener {
    ingest: Arc<IngestContext>,
    socket: Option<TcpListener>,
    accepting: Option<SpawnHandle>,
    next_connection_id: u64,
    connections: HashMap<u64, Addr<Connection>>,
    addresses: AddressLimits,
    drained: Vec<oneshot::Sender<()>>,
    /// Connections over the cap can come at any rate: logged once per interval with a count.
    rejected_log: LogThrottle,
    /// So can connections the per-address rules refuse.
    refused_log: LogThrottle,
}

impl Listener {
    pub fn new(ingest: Arc<IngestContext>, socket: TcpListener) -> Self {
        Listener {
            ingest,
            socket: Some(socket),
            accepting: None,
            next_connection_id: 0,
            connections: HashMap::new(),
            addresses: AddressLimits::default(),
            drained: Vec::new(),
            rejected_log: LogThrottle::default(),
            refused_log: LogThrottle::default(),
        }
    }

    fn update_gauge(&self) {
        self.ingest
            .metrics
            .active_connections
            .set(self.connections.len() as i64);
    }
}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let socket = self.socket.take().expect("started once");
        let accepts = futures_util::stream::unfold(socket, |socket| async move {
            let accepted = socket.accept().await;
            if accepted.is_err() {
                // E.g. out of file descriptors: give the system a moment instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Some((accepted, socket))
        });
        self.accepting = Some(ctx.add_stream(accepts));
    }
}

impl StreamHandler<io::Result<(TcpStream, SocketAddr)>> for Listener {
    fn handle(&mut self, accepted: io::Result<(TcpStream, SocketAddr)>, ctx: &mut Context<Self>) {
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                log::error!("accepting a node connection failed: {e}");
                return;
            }
        };
        let metrics = &self.ingest.metrics;
        if self.connections.len() >= self.ingest.config.max_connections {
            metrics.connections_rejected.inc();
            if let Some(left_out) = self.rejected_log.hit(std::time::Instant::now()) {
                log::warn!(
                    "rejecting node connection from {peer}: {} connections open \
                     (max_connections){}",
                    self.connections.len(),
                    match left_out {
                        0 => String::new(),
                        n => format!("; {n} more rejected since the last such line"),
                    }
                );
            }
            return; // dropping the socket closes it
        }
        let now = Instant::now();
        let rules = &self.ingest.access;
        let admitted = if rules.address_allowed(peer.ip()) {
            self.addresses.admit(rules, peer.ip(), now)
        } else {
            Err("address_not_allowed")
        };
        if let Err(reason) = admitted {
            metrics
                .connections_refused
                .with_label_values(&[reason])
                .inc();
            if let Some(left_out) = self.refused_log.hit(now) {
                log::warn!(
                    "refusing node connection from {peer}: {reason}{}",
                    match left_out {
                        0 => String::new(),
                        n => format!(
                            "; {n} more refused by the address rules since the last such line"
                        ),
                    }
                );
            }
            return;
        }
        metrics.connections_total.inc();
        let id = self.next_connection_id;
        self.next_connection_id += 1;
        let connection =
            Connection::new(self.ingest.clone(), ctx.address(), id, peer, socket).start();
        self.connections.insert(id, connection);
        self.update_gauge();
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

/// A node reconnected from the same address: its connection `old` is closed. Sent by the
/// `Connection` that replaces it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Replace {
    pub old: u64,
}

impl Handler<Replace> for Listener {
    type Result = ();

    fn handle(&mut self, Replace { old }: Replace, _ctx: &mut Context<Self>) {
        if let Some(old_connection) = self.connections.get(&old) {
            old_connection.do_send(Close(CloseReason::Replaced));
        }
    }
}

/// A connection stopped. Sent by `Connection` when it stops.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unregister {
    pub connection_id: u64,
    pub ip: IpAddr,
}

impl Handler<Unregister> for Listener {
    type Result = ();

    fn handle(&mut self, msg: Unregister, _ctx: &mut Context<Self>) {
        self.connections.remove(&msg.connection_id);
        self.addresses
            .release(&self.ingest.access, msg.ip, Instant::now());
        self.update_gauge();
        if self.connections.is_empty() {
            for waiter in self.drained.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

/// Stop accepting and close every node connection; answers once all have stopped (each has
/// handed its last batch on by then). Sent by the server on shutdown.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseConnections;

impl Handler<CloseConnections> for Listener {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: CloseConnections, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(handle) = self.accepting.take() {
            ctx.cancel_future(handle);
        }
        for connection in self.connections.values() {
            connection.do_send(Close(CloseReason::Shutdown));
        }
        let (done, wait) = oneshot::channel();
        if self.connections.is_empty() {
            let _ = done.send(());
        } else {
            self.drained.push(done);
        }
        Box::pin(async move {
            let _ = wait.await;
        })
    }
}
