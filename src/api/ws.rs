//! `GET /api/ws`: upgrades to a WebSocket and starts a [`WsSession`] for the client.

use std::any::Any;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use actix_web::dev::Extensions;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;

use super::ws_session::WsSession;
use super::{ApiContext, ApiPool};
use crate::messages::SessionLink;

/// A duplicate of an HTTP connection's socket descriptor, kept with the connection so that a
/// WebSocket session frozen on a full socket can be shut down from outside (see
/// `live::broadcaster`).
struct ConnectionSocket(Arc<OwnedFd>);

/// Runs for every accepted HTTP connection (`HttpServer::on_connect`).
pub fn remember_socket(connection: &dyn Any, extensions: &mut Extensions) {
    let Some(tcp) = connection.downcast_ref::<tokio::net::TcpStream>() else {
        return;
    };
    match tcp.as_fd().try_clone_to_owned() {
        Ok(fd) => {
            extensions.insert(ConnectionSocket(Arc::new(fd)));
        }
        Err(e) => log::warn!(
            "cannot duplicate an API connection's socket ({e}); a WebSocket client on it that \
             stops reading cannot be cut off"
        ),
    }
}

#[utoipa::path(get, path = "/api/ws", tag = "live",
    responses((status = 101, description = "WebSocket live stream (README, \"WebSocket /api/ws\")"),
        (status = 400, description = "Not a WebSocket handshake")))]
pub async fn connect(
    req: HttpRequest,
    stream: web::Payload,
    api: web::Data<ApiContext>,
    pool: web::Data<ApiPool>,
) -> actix_web::Result<HttpResponse> {
    let socket = req.conn_data::<ConnectionSocket>().map(|s| s.0.clone());
    let session = WsSession::new(api.into_inner(), pool.0.clone(), SessionLink::new(socket));
    ws::start(session, &req, stream).inspect_err(|e| {
        log::debug!("WebSocket handshake refused: {e}");
    })
}
