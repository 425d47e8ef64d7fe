//! The web dashboard's page-load budget, measured in a real headless Chromium against a running
//! TART: `cargo bench --bench web_page -- --url http://127.0.0.1:8080 --minutes 10`.
//!
//! 1. First render of the network page: from navigation start until the node table first holds
//!    rows (the page marks it in `window.__tartFirstRender`), over `--loads` fresh loads, and how
//!    much of it the `/api/nodes` answer took.
//! 2. The live stream's memory: the live page stays open for `--minutes` while TART's load runs,
//!    and every 30 s the JS heap (`performance.memory`), the DOM's element count and the events
//!    received so far are printed.
//!
//! Start the load first, e.g. `tart-sim --nodes 1024 --rate 100` against the same TART.

#[path = "../tests/harness/browser.rs"]
mod browser;

use std::time::{Duration, Instant};

use browser::Browser;
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// The TART to measure.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Fresh loads of the network page to time.
    #[arg(long, default_value_t = 5)]
    loads: usize,
    /// How long to watch the live stream.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Ignored: `cargo bench` passes `--bench`.
    #[arg(long)]
    bench: bool,
}

const SAMPLE_EVERY: Duration = Duration::from_secs(30);

fn main() {
    let args = Args::parse();
    actix_web::rt::System::new().block_on(measure(args));
}

async fn measure(args: Args) {
    let browser = Browser::start().await;
    let mut renders = Vec::new();
    for _ in 0..args.loads {
        browser.goto("about:blank").await;
        browser.goto(&format!("{}/", args.url)).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let (ms, rows, fetch) = loop {
            let (ms, rows, fetch): (Option<f64>, usize, Option<f64>) = browser
                .js("return [window.__tartFirstRender ?? null, \
                     document.querySelectorAll('#node-table tbody tr').length, \
                     performance.getEntriesByType('resource') \
                       .find(e => e.name.endsWith('/api/nodes'))?.duration ?? null]")
                .await;
            if let Some(ms) = ms {
                break (ms, rows, fetch.unwrap_or(f64::NAN));
            }
            assert!(Instant::now() < deadline, "the node table never rendered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        println!(
            "first render of the network page: {ms:.0} ms ({rows} node rows; /api/nodes took \
             {fetch:.0} ms of it)"
        );
        renders.push(ms);
    }
    renders.sort_by(f64::total_cmp);
    println!(
        "first render, median of {}: {:.0} ms (min {:.0}, max {:.0})",
        renders.len(),
        renders[renders.len() / 2],
        renders[0],
        renders[renders.len() - 1]
    );

    browser.goto(&format!("{}/#/live", args.url)).await;
    browser
        .wait_for_text("#live-state", Duration::from_secs(30), |_| true)
        .await;
    let started = Instant::now();
    let until = Duration::from_secs_f64(args.minutes * 60.0);
    println!("minute  js_heap_MiB  dom_elements  live_state                     received");
    loop {
        let (heap, elements, state, received): (f64, usize, String, String) = browser
            .js(
                "return [performance.memory ? performance.memory.usedJSHeapSize / 1048576 : -1, \
                 document.getElementsByTagName('*').length, \
                 document.getElementById('live-state').textContent, \
                 document.getElementById('live-rate').textContent]",
            )
            .await;
        println!(
            "{:6.1}  {heap:11.1}  {elements:12}  {state:30} {received}",
            started.elapsed().as_secs_f64() / 60.0
        );
        if started.elapsed() >= until {
            break;
        }
        tokio::time::sleep(SAMPLE_EVERY.min(until.saturating_sub(started.elapsed()))).await;
    }
    let errors = browser.page_errors().await;
    println!("page errors: {}", errors.len());
    for e in errors.iter().take(5) {
        println!("  {e}");
    }
    browser.close().await;
}
