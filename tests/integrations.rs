//! The operators' integrations in `deploy/`, exercised with the real tools (Debian's packages,
//! which `.ci/run` installs): promtool on the alert rules and their unit tests; a real Prometheus
//! scraping a simulator-fed TART through the shipped scrape config and evaluating every alert and
//! dashboard expression; a real nginx with the example config in front of REST, the WebSocket and
//! the telemetry port; the Kubernetes manifest against the routes and ports TART has.

mod harness;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use harness::*;
use serde::Deserialize;
use serde_json::{json, Value};
use tart_backend::sim::{SimConfig, Simulation};
use tokio_util::sync::CancellationToken;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a YAML file, as JSON values.
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    yaml_serde::Deserializer::from_str(&text)
        .map(|document| {
            Value::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

fn yaml(path: &Path) -> Value {
    let mut documents = yaml_documents(path);
    assert_eq!(documents.len(), 1, "{}: one document", path.display());
    documents.remove(0)
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

/// Runs a tool to completion: its exit status and what it printed.
fn run(program: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} (installed by .ci/run): {e}"));
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), printed)
}

/// A server process in a process group of its own, killed with its children when dropped; what
/// it prints goes to a log file kept for failure messages.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(command: &mut Command, log: PathBuf) -> Daemon {
        let file = std::fs::File::create(&log).expect("a log file");
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("the log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("{command:?} (installed by .ci/run): {e}"));
        Daemon { child, log }
    }

    fn log(&self) -> String {
        read(&self.log)
    }

    /// Waits until it accepts connections on `addr`.
    async fn listening(&self, addr: SocketAddr) {
        let up = eventually(WAIT, || async {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        assert!(up, "nothing listens on {addr}: {}", self.log());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        // `--`: procps' kill would read the negative group id as an option.
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Six simulated nodes at 500 ms slots feeding `server` until the token is cancelled.
fn simulate(server: &TestServer) -> CancellationToken {
    let stop = CancellationToken::new();
    let config = SimConfig {
        nodes: 6,
        seed: 21,
        slot_duration: Duration::from_millis(500),
        ..SimConfig::new(server.telemetry_addr)
    };
    tokio::task::spawn_local(Simulation::new(config).run(stop.clone()));
    stop
}

/// The alert rules of the shipped rule file, flattened over its groups.
fn alert_rules() -> Vec<Value> {
    yaml(&deploy("prometheus/alerts.yml"))["groups"]
        .as_array()
        .expect("rule groups")
        .iter()
        .flat_map(|group| group["rules"].as_array().expect("rules").clone())
        .collect()
}

/// promtool accepts the rule file and its unit tests pass; every alert has a summary and a
/// runbook line, and unit tests in which it fires and in which it stays silent; the seed
/// README's four example rules are among them, corrected.
#[test]
fn the_alert_rules_pass_promtool_and_every_alert_is_unit_tested_both_ways() {
    let rules_file = deploy("prometheus/alerts.yml");
    let (ok, printed) = run(
        "promtool",
        &["check", "rules", rules_file.to_str().unwrap()],
    );
    assert!(ok, "promtool check rules: {printed}");
    let tests_file = deploy("prometheus/alerts_test.yml");
    let (ok, printed) = run("promtool", &["test", "rules", tests_file.to_str().unwrap()]);
    assert!(ok, "promtool test rules: {printed}");

    let rules = alert_rules();
    let names: BTreeSet<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    for seed_rule in [
        "TartBackendDown",
        "HighConnectionCount",
        "HighEventDropRate",
        "DatabaseWriteSlow",
    ] {
        assert!(names.contains(seed_rule), "{seed_rule} is shipped");
    }
    for rule in &rules {
        let name = rule["alert"].as_str().expect("alerting rules only");
        for annotation in ["summary", "runbook"] {
            assert!(
                rule["annotations"][annotation]
                    .as_str()
                    .is_some_and(|text| !text.trim().is_empty()),
                "{name} has a {annotation}"
            );
        }
    }
    let cases: Vec<Value> = yaml(&tests_file)["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .flat_map(|test| {
            test["alert_rule_test"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    for name in &names {
        let fires = |fires: bool| {
            cases.iter().any(|case| {
                case["alertname"] == *name
                    && case["exp_alerts"]
                        .as_array()
                        .is_some_and(|alerts| alerts.is_empty() != fires)
            })
        };
        assert!(fires(true), "{name}: a unit test where it fires");
        assert!(fires(false), "{name}: a unit test where it does not");
    }
}

/// Rewrites an alert's `LHS OP NUMBER` as `LHS OP bool NUMBER`: 0 or 1 for every series the alert
/// watches, so a rule that is not firing still shows whether its series exist. `None` when the
/// expression is not of that form (the rule file keeps every alert so).
fn as_bool(expr: &str) -> Option<String> {
    let (at, op) = [" >= ", " <= ", " == ", " != ", " > ", " < "]
        .into_iter()
        .filter_map(|op| expr.rfind(op).map(|at| (at, op)))
        .max()?;
    let threshold = expr[at + op.len()..].trim();
    threshold.parse::<f64>().ok()?;
    Some(format!("{} {} bool {threshold}", &expr[..at], op.trim()))
}

/// Every panel query and template variable query of a Grafana dashboard, with Grafana's own
/// variables given values and the dashboard's template variables matching everything.
fn dashboard_queries(path: &Path) -> Vec<(String, String)> {
    let dashboard: Value = serde_json::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    let variables: Vec<&Value> = dashboard["templating"]["list"]
        .as_array()
        .map(|list| list.iter().collect())
        .unwrap_or_default();
    let fill = |expr: &str| {
        let mut expr = expr
            .replace("$__rate_interval", "1m")
            .replace("$__interval", "15s")
            .replace("$__range", "5m");
        for variable in &variables {
            let name = variable["name"].as_str().expect("a variable's name");
            expr = expr
                .replace(&format!("${{{name}}}"), ".*")
                .replace(&format!("${name}"), ".*");
        }
        assert!(
            !expr.contains('$'),
            "{}: unknown variable in {expr}",
            path.display()
        );
        expr
    };
    let mut queries = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .collect();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{title}: a target without expr"));
            queries.push((format!("panel {title:?}"), fill(expr)));
        }
        if panel["type"] != "row" {
            assert!(panel["targets"].is_array(), "panel {title:?} has queries");
        }
    }
    for variable in &variables {
        let query = variable["query"]["query"]
            .as_str()
            .or(variable["query"].as_str())
            .unwrap_or_default();
        // label_values(selector, label) lists the label's values: the series must exist.
        if let Some(arguments) = query
            .strip_prefix("label_values(")
            .and_then(|rest| rest.strip_suffix(')'))
        {
            let (selector, label) = arguments.rsplit_once(',').expect("label_values(m, l)");
            queries.push((
                format!("variable {}", variable["name"]),
                format!("group by ({}) ({})", label.trim(), fill(selector)),
            ));
        }
    }
    queries
}

async fn prometheus_query(prometheus: SocketAddr, expr: &str) -> Value {
    let mut response = awc::Client::new()
        .get(format!("http://{prometheus}/api/v1/query"))
        .query(&[("query", expr)])
        .expect("a query string")
        .timeout(WAIT)
        .send()
        .await
        .unwrap_or_else(|e| panic!("Prometheus query {expr}: {e}"));
    response
        .json()
        .limit(16 << 20)
        .await
        .expect("Prometheus answers JSON")
}

/// The shipped scrape config pointed at a test server: its jobs and paths as shipped, scraping
/// and evaluating every second, the shipped rule file loaded.
fn scrape_config(api: SocketAddr) -> Value {
    let mut config = yaml(&deploy("prometheus/prometheus.yml"));
    config["global"]["scrape_interval"] = json!("1s");
    config["global"]["evaluation_interval"] = json!("1s");
    config["rule_files"] = json!([deploy("prometheus/alerts.yml")]);
    if let Some(config) = config.as_object_mut() {
        config.remove("alerting");
    }
    let jobs = config["scrape_configs"]
        .as_array_mut()
        .expect("scrape jobs");
    let mut paths = BTreeSet::new();
    for job in jobs {
        let path = job["metrics_path"].as_str().unwrap_or("/metrics");
        paths.insert((
            job["job_name"].as_str().unwrap().to_owned(),
            path.to_owned(),
        ));
        if let Some(job) = job.as_object_mut() {
            job.remove("scrape_interval");
            job.remove("authorization");
        }
        job["static_configs"] = json!([{ "targets": [api.to_string()] }]);
    }
    assert!(
        paths.contains(&("tart-backend".into(), "/metrics".into()))
            && paths.contains(&("tart-network".into(), "/metrics/network".into())),
        "the shipped config scrapes /metrics as tart-backend and /metrics/network as \
         tart-network: {paths:?}"
    );
    config
}

/// A real Prometheus scrapes a TART fed by six simulated nodes, with the shipped scrape config
/// and rule file: every rule loads and evaluates without error, and every alert expression (as
/// 0/1 per watched series) and every dashboard query returns data.
#[actix_web::test]
async fn a_real_prometheus_evaluates_every_alert_and_dashboard_query_on_a_simulated_network() {
    let db = TestDb::new();
    let server = TestServer::start(unlimited_config(&db)).await;
    let stop = simulate(&server);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config_file = dir.path().join("prometheus.yml");
    std::fs::write(&config_file, scrape_config(server.api_addr).to_string()).unwrap();
    let addr = free_addr();
    let prometheus = Daemon::start(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}")),
        dir.path().join("prometheus.log"),
    );
    prometheus.listening(addr).await;
    // It answers 503 until its storage and rules are loaded.
    let ready = eventually(WAIT, || async { get(addr, "/-/ready", &[]).await.0 == 200 }).await;
    assert!(ready, "Prometheus ready: {}", prometheus.log());

    // Every shipped rule loaded, evaluated, and healthy.
    let shipped = alert_rules().len();
    let rules_healthy = || async {
        let (_, rules) = get_json(addr, "/api/v1/rules").await;
        let loaded: Vec<Value> = rules["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let healthy = loaded.len() == shipped
            && loaded.iter().all(|rule| {
                rule["health"] == "ok" && rule["lastEvaluation"] != "0001-01-01T00:00:00Z"
            });
        (healthy, loaded)
    };
    assert!(
        eventually(WAIT, || async { rules_healthy().await.0 }).await,
        "{shipped} rules loaded and healthy: {:?}\n{}",
        rules_healthy().await.1,
        prometheus.log()
    );

    let mut pending: Vec<(String, String)> = rules_healthy()
        .await
        .1
        .iter()
        .map(|rule| {
            let name = rule["name"].as_str().unwrap();
            let query = rule["query"].as_str().unwrap();
            let watched = as_bool(query)
                .unwrap_or_else(|| panic!("{name}: `{query}` is not of the form LHS OP NUMBER"));
            (format!("alert {name}"), watched)
        })
        .collect();
    for dashboard in [
        "grafana/dashboards/tart-service.json",
        "grafana/dashboards/jam-network.json",
    ] {
        pending.extend(dashboard_queries(&deploy(dashboard)));
    }
    assert!(
        pending.len() > shipped + 20,
        "dashboards with queries: {pending:?}"
    );
    // Rates need two scrapes and the slots a few blocks: ask until each query has data.
    let mut answers = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    while !pending.is_empty() && tokio::time::Instant::now() < deadline {
        answers.clear();
        let mut still = Vec::new();
        for (what, expr) in pending {
            let answer = prometheus_query(addr, &expr).await;
            assert_eq!(
                answer["status"], "success",
                "{what}: `{expr}` evaluates: {answer}"
            );
            if answer["data"]["result"]
                .as_array()
                .is_none_or(|r| r.is_empty())
            {
                answers.push(format!("{what}: `{expr}` → {answer}"));
                still.push((what, expr));
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.cancel();
    assert!(
        pending.is_empty(),
        "queries without data:\n{}",
        answers.join("\n")
    );
}

/// The nginx binary: Debian puts it in /usr/sbin, which a user's PATH may lack.
fn nginx() -> &'static str {
    if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

/// The shipped nginx.conf with its two listen ports and two upstreams replaced, each of which
/// must be in it exactly once.
fn proxy_config(replacements: [(&str, String); 4]) -> String {
    let mut config = read(&deploy("nginx/nginx.conf"));
    for (line, with) in replacements {
        assert_eq!(
            config.lines().filter(|l| l.trim() == line).count(),
            1,
            "nginx.conf has `{line}` once"
        );
        config = config.replace(line, &with);
    }
    config
}

/// A real nginx with the shipped example config in front of a TART: the REST API, the page, the
/// WebSocket live stream and the telemetry port (plain TCP, stream block) all work through it.
#[actix_web::test]
async fn the_example_nginx_config_passes_rest_the_websocket_and_the_telemetry_port() {
    let db = TestDb::new();
    let server = TestServer::start(tart_backend::config::Config {
        api_trusted_proxies: "127.0.0.1".into(),
        ..unlimited_config(&db)
    })
    .await;
    let (http, telemetry) = (free_addr(), free_addr());
    let dir = tempfile::tempdir().expect("a temporary directory");
    // nginx's workers drop to nobody when started as root: let them use the prefix.
    for sub in ["logs", "temp"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    Command::new("chmod")
        .args(["-R", "a+rwx"])
        .arg(dir.path())
        .status()
        .unwrap();
    let config_file = dir.path().join("nginx.conf");
    std::fs::write(
        &config_file,
        proxy_config([
            ("listen 80;", format!("listen {http};")),
            ("listen 9000;", format!("listen {telemetry};")),
            (
                "server 127.0.0.1:8080;",
                format!("server {};", server.api_addr),
            ),
            (
                "server 127.0.0.1:19000;",
                format!("server {};", server.telemetry_addr),
            ),
        ]),
    )
    .unwrap();
    let proxy = Daemon::start(
        Command::new(nginx())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&config_file)
            .args(["-e", "logs/error.log", "-g", "daemon off;"]),
        dir.path().join("nginx.out"),
    );
    proxy.listening(http).await;
    proxy.listening(telemetry).await;

    let (status, health) = get_json(http, "/api/health").await;
    assert_eq!(status, 200, "{health}");
    let (status, _, page) = get(http, "/", &[]).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&page).contains("<html"));

    // A node through the stream block, watched through the proxied WebSocket.
    let (mut ws, connected) = ws_connect(http).await;
    assert_eq!(connected["type"], "connected");
    let mut node = FakeNode::connect(telemetry, node_info(41, 2)).await;
    let sent: Vec<_> = (1..=3)
        .map(|slot| tart_backend::jip3::TimedEvent {
            timestamp: jam_now(u64::from(slot)),
            event: tart_backend::jip3::Event::BestBlockChanged {
                slot,
                header_hash: tart_backend::jip3::types::Hash([slot as u8; 32]),
            },
        })
        .collect();
    node.send_events(&sent).await;
    for slot in 1..=3 {
        let (_, event) = ws_until(&mut ws, "event").await;
        assert_eq!(event["data"]["node_id"], node.node_id().as_str());
        assert_eq!(event["data"]["event"]["BestBlockChanged"]["slot"], slot);
    }
    assert!(eventually_stored(&db, &node.node_id(), 3).await);
    let (status, nodes) = get_json(http, "/api/nodes").await;
    assert_eq!(status, 200);
    assert!(
        nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["node_id"] == node.node_id().as_str() && n["is_connected"] == true),
        "the node connected through the proxy: {nodes}"
    );
    // nginx logs a request when it ends: the WebSocket's once the client closes it.
    drop(ws);
    let access_log = dir.path().join("logs/access.log");
    let logged = || {
        let log = read(&access_log);
        log.contains("GET /api/ws") && log.contains("GET /api/nodes")
    };
    assert!(
        eventually(WAIT, || async { logged() }).await,
        "{}",
        read(&access_log)
    );
}

/// The pod's container port of a probe or Service target: a number, or a port's name.
fn container_port(ports: &[Value], port: &Value) -> u64 {
    port.as_u64().unwrap_or_else(|| {
        ports
            .iter()
            .find(|p| p["name"] == *port)
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("no container port {port}"))
    })
}

/// The Kubernetes manifest passes the schema check (kubernetes-validate, with the schemas it
/// bundles), and holds together: the Secret gives the database URL, the container listens where
/// its ports and the Service say, its probes ask endpoints that answer 200 on a running TART, and
/// it is given longer than TART's shutdown to write what it holds.
#[actix_web::test]
async fn the_kubernetes_manifest_is_valid_and_its_probes_ports_and_secret_fit_tart() {
    let manifest = deploy("kubernetes/tart.yaml");
    let (ok, printed) = run(
        "kubernetes-validate",
        &["--strict", manifest.to_str().unwrap()],
    );
    assert!(ok, "kubernetes-validate: {printed}");

    let documents = yaml_documents(&manifest);
    let of_kind = |kind: &str| {
        documents
            .iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("a {kind}"))
    };
    let (secret, deployment, service) =
        (of_kind("Secret"), of_kind("Deployment"), of_kind("Service"));
    let pod = &deployment["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let ports = container["ports"]
        .as_array()
        .expect("container ports")
        .clone();

    // The database URL comes from the Secret.
    let secret_name = &secret["metadata"]["name"];
    assert!(secret["stringData"]["DATABASE_URL"].is_string());
    let from_secret = container["envFrom"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|source| source["secretRef"]["name"] == *secret_name);
    assert!(from_secret, "the container reads the Secret {secret_name}");

    // TART binds where the container ports say; the Service reaches them and selects the pod.
    let defaults = tart_backend::config::Config::default();
    for (variable, default, name) in [
        ("TELEMETRY_BIND", &defaults.telemetry_bind, "telemetry"),
        ("API_BIND", &defaults.api_bind, "http"),
    ] {
        let bind = container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == variable)
            .and_then(|e| e["value"].as_str())
            .unwrap_or(default);
        let port: u64 = bind.rsplit_once(':').unwrap().1.parse().unwrap();
        assert_eq!(container_port(&ports, &json!(name)), port, "{variable}");
    }
    let targets: BTreeSet<u64> = service["spec"]["ports"]
        .as_array()
        .expect("service ports")
        .iter()
        .map(|p| container_port(&ports, &p["targetPort"]))
        .collect();
    assert_eq!(
        targets,
        ports
            .iter()
            .filter_map(|p| p["containerPort"].as_u64())
            .collect()
    );
    for (label, value) in service["spec"]["selector"].as_object().expect("a selector") {
        assert_eq!(
            pod["metadata"]["labels"][label], *value,
            "the Service selects the pod"
        );
    }

    // The probes ask endpoints a running TART answers, on its HTTP port.
    let db = TestDb::new();
    let server = TestServer::start(test_config(&db)).await;
    assert!(container["livenessProbe"].is_object() && container["readinessProbe"].is_object());
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if container[probe].is_null() {
            continue;
        }
        let check = &container[probe]["httpGet"];
        let path = check["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{probe} path"));
        assert_eq!(container_port(&ports, &check["port"]), 8080, "{probe} port");
        let (status, body) = get_json(server.api_addr, path).await;
        assert_eq!(status, 200, "{probe} {path}: {body}");
    }
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(grace > defaults.shutdown_timeout_secs, "{grace} s");
}
