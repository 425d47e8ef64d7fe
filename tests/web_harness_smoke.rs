//! A check of the browser harness itself ([`harness::browser`]) against a tiny page served
//! locally: clicks, typing, waiting, scripts, screenshots, the page's errors, and several
//! browsers at once.

mod harness;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use harness::browser::Browser;

const PAGE: &str = r#"<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>harness check</title>
<link rel="icon" href="data:,">
<script>
  window.__tartErrors = [];
  const consoleError = console.error;
  console.error = (...args) => {
    window.__tartErrors.push(args.map(String).join(" "));
    consoleError.apply(console, args);
  };
</script>
</head>
<body>
<input id="name" value="nobody">
<button id="go">Go</button>
<div id="out">idle</div>
<ul><li>a</li><li>b</li><li>c</li></ul>
<script>
  document.getElementById("go").addEventListener("click", () => {
    // Later, not at once, so the test has to wait for it.
    setTimeout(() => {
      document.getElementById("out").textContent =
        "hello " + document.getElementById("name").value;
    }, 300);
  });
  console.error("boom");
</script>
</body>
</html>"#;

/// Serves [`PAGE`] at `/` on an ephemeral port.
fn serve() -> SocketAddr {
    let server = HttpServer::new(|| {
        App::new().route(
            "/",
            web::get().to(|| async {
                HttpResponse::Ok()
                    .content_type("text/html; charset=utf-8")
                    .body(PAGE)
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .expect("a local port");
    let addr = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    addr
}

#[actix_web::test]
async fn drives_a_page() {
    let addr = serve();
    let started = Instant::now();
    let browser = Browser::start().await;
    eprintln!("Browser::start took {:?}", started.elapsed());

    browser.goto(&format!("http://{addr}/")).await;
    assert_eq!(browser.text_of("#out").await, "idle");
    assert_eq!(browser.count("li").await, 3);
    assert_eq!(browser.count("table").await, 0);
    assert_eq!(browser.js::<u32>("return 6 * 7;").await, 42);

    browser.type_into("#name", "tart").await;
    browser.click("#go").await;
    let text = browser
        .wait_for_text("#out", Duration::from_secs(10), |t| t.starts_with("hello"))
        .await;
    assert_eq!(text, "hello tart");

    // "boom" once from the page's own log and once from the browser's console log; the console
    // entries are kept, so asking again gives the same.
    let errors = browser.page_errors().await;
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0], "boom");
    assert!(errors[1].contains("\"boom\""), "{errors:?}");
    assert_eq!(browser.page_errors().await, errors);

    let shot = browser.screenshot("web_harness_smoke").await;
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{}", shot.display());

    browser.close().await;
}

#[actix_web::test]
async fn runs_browsers_side_by_side() {
    let addr = serve();
    let (a, b) = futures_util::join!(Browser::start(), Browser::start());
    let url = format!("http://{addr}/");
    futures_util::join!(a.goto(&url), b.goto(&url));
    a.type_into("#name", "a").await;
    b.type_into("#name", "b").await;
    futures_util::join!(a.click("#go"), b.click("#go"));
    let within = Duration::from_secs(10);
    let (text_a, text_b) = futures_util::join!(
        a.wait_for_text("#out", within, |t| t != "idle"),
        b.wait_for_text("#out", within, |t| t != "idle"),
    );
    assert_eq!((text_a.as_str(), text_b.as_str()), ("hello a", "hello b"));
    // Dropped without `close`, as after a failed assertion: Drop alone must clean up.
    drop(a);
    b.close().await;
}

#[actix_web::test]
#[should_panic(expected = "last text \"idle\"")]
async fn a_wait_that_times_out_says_what_it_saw() {
    let addr = serve();
    let browser = Browser::start().await;
    browser.goto(&format!("http://{addr}/")).await;
    browser
        .wait_for_text("#out", Duration::from_millis(500), |t| t == "never")
        .await;
}
