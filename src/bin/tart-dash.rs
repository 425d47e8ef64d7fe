//! `tart-dash`: the operators' terminal dashboard for a running TART (see `tart_backend::dash`).

use std::time::Duration;

use clap::Parser;
use tart_backend::dash::{self, app::Settings};

/// Watch a JAM network through a running TART: nodes, blocks, live events.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Host of TART's API [default: localhost]
    #[arg(long)]
    host: Option<String>,
    /// Port of TART's API [default: 8080]
    #[arg(long)]
    port: Option<u16>,
    /// The API's base URL, used when neither --host nor --port is given
    #[arg(long, env = "TART_URL")]
    url: Option<String>,
    /// Milliseconds between REST refreshes (the live stream is pushed, not polled)
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..))]
    refresh_ms: u64,
    /// The backend's api_token, if it requires one
    #[arg(long, env = "TART_API_TOKEN")]
    token: Option<String>,
    /// Seconds without an event after which a connected node is marked stale
    #[arg(long, default_value_t = 30)]
    stale_secs: u64,
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    let settings = Settings {
        url: dash::base_url(cli.host.as_deref(), cli.port, cli.url.as_deref()),
        stale_after: Duration::from_secs(cli.stale_secs),
        token: cli.token,
    };
    dash::run(settings, Duration::from_millis(cli.refresh_ms)).await
}
