//! One test per diagnostic `mesh::resolve` reports: its code, severity, file, line, resource and field path.

use std::fs;

use switchyard::mesh::{self, Diagnostic, Severity};
use switchyard::spec::{self, Kind};

fn fixture() -> spec::Config {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/fixtures/bookinfo-mesh.yaml"
    );
    let mesh = spec::load_str("mesh.yaml", &fs::read_to_string(path).expect("fixture"))
        .expect("fixture loads");
    let dr = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/istio-bookinfo/destination-rule-all.yaml"
    );
    mesh.overlay(
        spec::load_str("dr.yaml", &fs::read_to_string(dr).expect("samples")).expect("samples load"),
    )
}

/// A filler document so that the resource under test starts on line 8 of `test.yaml`, not line 1.
const FILLER: &str = "# filler\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: filler\nspec:\n  hosts: [details]\n---\n";

/// All diagnostics (errors and warnings) for the Bookinfo mesh plus `yaml` loaded as `test.yaml`.
fn diagnostics(yaml: &str) -> (bool, Vec<Diagnostic>) {
    let filler_route = FILLER.replace(
        "  hosts: [details]\n",
        "  hosts: [details]\n  http:\n  - route:\n    - destination: {host: details}\n",
    );
    let text = format!("{filler_route}{yaml}");
    let config = fixture().overlay(spec::load_str("test.yaml", &text).expect("test input loads"));
    match mesh::resolve(&config) {
        Ok(r) => (true, r.warnings),
        Err(d) => (false, d),
    }
}

/// The one diagnostic with `code` reported against `test.yaml`.
fn the(diags: &[Diagnostic], code: &str) -> Diagnostic {
    let found: Vec<&Diagnostic> = diags
        .iter()
        .filter(|d| d.code == code && d.file.to_str() == Some("test.yaml"))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {code} in test.yaml, got: {diags:#?}"
    );
    found[0].clone()
}

/// `line` is the line of the field itself in `test.yaml` (the resource under test starts on line 12).
fn assert_at(d: &Diagnostic, line: usize, severity: Severity, kind: Kind, name: &str, field: &str) {
    assert_eq!(d.severity, severity, "{d}");
    assert_eq!(d.line, line, "{d}");
    let r = d.resource.as_ref().expect("resource");
    assert_eq!(
        (r.kind, r.namespace.as_str(), r.name.as_str()),
        (kind, "default", name),
        "{d}"
    );
    assert_eq!(d.field, field, "{d}");
}

fn vs(name: &str, body: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\nspec:\n{body}")
}

#[test]
fn sy0101_destination_host_without_service_entry() {
    let (ok, d) = diagnostics(&vs(
        "reviews",
        "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: nosuch}\n",
    ));
    assert!(!ok);
    let d = the(&d, "SY0101");
    assert_at(
        &d,
        20,
        Severity::Error,
        Kind::VirtualService,
        "reviews",
        "spec.http[0].route[0].destination.host",
    );
    assert!(
        d.message.contains("nosuch.default.svc.cluster.local"),
        "{d}"
    );
}

#[test]
fn ist0101_subset_without_destination_rule() {
    let (ok, d) = diagnostics(&vs(
        "reviews",
        "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v9}\n",
    ));
    assert!(!ok);
    let d = the(&d, "IST0101");
    assert_at(
        &d,
        20,
        Severity::Error,
        Kind::VirtualService,
        "reviews",
        "spec.http[0].route[0].destination.subset",
    );
    assert!(
        d.message.contains("v9") && d.message.contains("v1, v2, v3"),
        "{d}"
    );
}

#[test]
fn sy0102_subset_selecting_no_workload_is_a_warning() {
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: reviews\nspec:\n  host: reviews\n  subsets:\n  - name: v1\n    labels: {version: v1}\n  - name: v9\n    labels: {version: v9}\n";
    let (ok, d) = diagnostics(dr);
    assert!(ok, "a warning must not fail resolution: {d:#?}");
    let d = the(&d, "SY0102");
    assert_at(
        &d,
        22,
        Severity::Warning,
        Kind::DestinationRule,
        "reviews",
        "spec.subsets[1].labels",
    );
}

#[test]
fn sy0103_negative_weight() {
    let body = "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 110\n    - destination: {host: reviews, subset: v3}\n      weight: -10\n";
    let (ok, d) = diagnostics(&vs("reviews", body));
    assert!(!ok);
    assert_at(
        &the(&d, "SY0103"),
        23,
        Severity::Error,
        Kind::VirtualService,
        "reviews",
        "spec.http[0].route[1].weight",
    );
}

#[test]
fn sy0103_all_weights_zero() {
    let body = "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 0\n    - destination: {host: reviews, subset: v3}\n";
    let (ok, d) = diagnostics(&vs("reviews", body));
    assert!(!ok);
    assert_at(
        &the(&d, "SY0103"),
        19,
        Severity::Error,
        Kind::VirtualService,
        "reviews",
        "spec.http[0].route",
    );
}

#[test]
fn sy0104_same_resource_twice_names_both_files() {
    let first = spec::load_str(
        "first.yaml",
        &vs(
            "reviews",
            "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n",
        ),
    )
    .expect("load");
    let second = spec::load_str(
        "second.yaml",
        &format!(
            "# a comment\n{}",
            vs(
                "reviews",
                "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n"
            )
        ),
    )
    .expect("load");
    let mut config = fixture();
    // Appending, not overlaying: two files in one spec directory.
    config.virtual_services.extend(first.virtual_services);
    config.virtual_services.extend(second.virtual_services);
    let d = mesh::resolve(&config).expect_err("duplicates are errors");
    let d: Vec<&Diagnostic> = d.iter().filter(|d| d.code == "SY0104").collect();
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].file.to_str(), Some("second.yaml"));
    assert_eq!(d[0].line, 5, "the `name:` line");
    assert_eq!(d[0].field, "metadata.name");
    assert!(d[0].message.contains("first.yaml:1"), "{}", d[0]);
}

#[test]
fn sy0105_regex_re2_rejects() {
    let body = "  hosts: [reviews]\n  http:\n  - match:\n    - uri: {regex: '/a(?=b)'}\n    route:\n    - destination: {host: reviews}\n";
    let (ok, d) = diagnostics(&vs("reviews", body));
    assert!(!ok);
    assert_at(
        &the(&d, "SY0105"),
        20,
        Severity::Error,
        Kind::VirtualService,
        "reviews",
        "spec.http[0].match[0].uri.regex",
    );
}

#[test]
fn sy0105_bad_header_regex() {
    let body = "  hosts: [reviews]\n  http:\n  - match:\n    - headers: {end-user: {regex: '(unclosed'}}\n    route:\n    - destination: {host: reviews}\n";
    let (ok, d) = diagnostics(&vs("reviews", body));
    assert!(!ok);
    assert_at(
        &the(&d, "SY0105"),
        20,
        Severity::Error,
        Kind::VirtualService,
        "reviews",
        "spec.http[0].match[0].headers.end-user.regex",
    );
}

#[test]
fn sy0106_bad_duration() {
    let body = "  hosts: [reviews]\n  http:\n  - timeout: 10 seconds\n    route:\n    - destination: {host: reviews}\n";
    let (ok, d) = diagnostics(&vs("reviews", body));
    assert!(!ok);
    assert_at(
        &the(&d, "SY0106"),
        19,
        Severity::Error,
        Kind::VirtualService,
        "reviews",
        "spec.http[0].timeout",
    );
}

#[test]
fn sy0106_bad_fault_delay() {
    let body = "  hosts: [ratings]\n  http:\n  - fault:\n      delay: {fixedDelay: -7s, percentage: {value: 100}}\n    route:\n    - destination: {host: ratings}\n";
    let (ok, d) = diagnostics(&vs("ratings", body));
    assert!(!ok);
    assert_at(
        &the(&d, "SY0106"),
        20,
        Severity::Error,
        Kind::VirtualService,
        "ratings",
        "spec.http[0].fault.delay.fixedDelay",
    );
}

#[test]
fn sy0107_uppercase_header_name() {
    let body = "  hosts: [reviews]\n  http:\n  - match:\n    - headers: {End-User: {exact: jason}}\n    route:\n    - destination: {host: reviews}\n";
    let (ok, d) = diagnostics(&vs("reviews", body));
    assert!(!ok);
    let d = the(&d, "SY0107");
    assert_at(
        &d,
        20,
        Severity::Error,
        Kind::VirtualService,
        "reviews",
        "spec.http[0].match[0].headers.End-User",
    );
    assert!(d.message.contains("end-user"), "{d}");
}

#[test]
fn sy0108_fault_without_delay_or_abort() {
    let body = "  hosts: [ratings]\n  http:\n  - fault: {}\n    route:\n    - destination: {host: ratings}\n";
    let (ok, d) = diagnostics(&vs("ratings", body));
    assert!(!ok);
    assert_at(
        &the(&d, "SY0108"),
        19,
        Severity::Error,
        Kind::VirtualService,
        "ratings",
        "spec.http[0].fault",
    );
}

#[test]
fn sy0109_percentage_out_of_range() {
    let body = "  hosts: [ratings]\n  http:\n  - fault:\n      abort: {httpStatus: 500, percentage: {value: 150}}\n    route:\n    - destination: {host: ratings}\n";
    let (ok, d) = diagnostics(&vs("ratings", body));
    assert!(!ok);
    assert_at(
        &the(&d, "SY0109"),
        20,
        Severity::Error,
        Kind::VirtualService,
        "ratings",
        "spec.http[0].fault.abort.percentage.value",
    );
}

#[test]
fn sy0110_gateway_selector_matching_no_proxy_is_a_warning() {
    let gw = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: gw\nspec:\n  selector: {istio: egressgateway}\n  servers:\n  - port: {number: 8080, name: http, protocol: HTTP}\n    hosts: ['*']\n";
    let (ok, d) = diagnostics(gw);
    assert!(ok, "{d:#?}");
    assert_at(
        &the(&d, "SY0110"),
        17,
        Severity::Warning,
        Kind::Gateway,
        "gw",
        "spec.selector",
    );
}

#[test]
fn sy0110_selector_matching_only_an_application_workload_is_a_warning() {
    // `app: reviews` matches the reviews WorkloadEntries, but the reviews ServiceEntry selects them: they are
    // application pods with sidecars, not a gateway.
    let gw = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: gw\nspec:\n  selector: {app: reviews}\n  servers:\n  - port: {number: 8080, name: http, protocol: HTTP}\n    hosts: ['*']\n";
    let (ok, d) = diagnostics(gw);
    assert!(ok, "{d:#?}");
    assert_at(
        &the(&d, "SY0110"),
        17,
        Severity::Warning,
        Kind::Gateway,
        "gw",
        "spec.selector",
    );
}

#[test]
fn sy0110_selector_matching_a_gateway_workload_entry_is_served() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: gw\nspec:\n  selector: {istio: my-gateway}\n  servers:\n  - port: {number: 8080, name: http, protocol: HTTP}\n    hosts: ['*']\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: my-gateway\nspec:\n  address: 127.0.9.1\n  labels: {istio: my-gateway}\n";
    let (ok, d) = diagnostics(yaml);
    assert!(ok, "{d:#?}");
    assert!(!d.iter().any(|d| d.code == "SY0110"), "{d:#?}");
    let (ok, d) = diagnostics(&yaml.replace(
        "selector: {istio: my-gateway}",
        "selector: {istio: ingressgateway}",
    ));
    assert!(ok, "{d:#?}");
    assert!(!d.iter().any(|d| d.code == "SY0110"), "{d:#?}");
}

#[test]
fn sy0111_destination_port_not_on_service() {
    let body = "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, port: {number: 9090}}\n";
    let (ok, d) = diagnostics(&vs("reviews", body));
    assert!(!ok);
    assert_at(
        &the(&d, "SY0111"),
        20,
        Severity::Error,
        Kind::VirtualService,
        "reviews",
        "spec.http[0].route[0].destination.port.number",
    );
}

#[test]
fn ist0112_destination_without_port_on_a_service_with_several_ports() {
    let body = "  hosts: [multi.example.com]\n  http:\n  - route:\n    - destination: {host: multi.example.com}\n";
    let se = "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: multi\nspec:\n  hosts: [multi.example.com]\n  ports:\n  - {number: 80, name: http, protocol: HTTP}\n  - {number: 8080, name: http-alt, protocol: HTTP}\n  resolution: DNS\n";
    let (ok, d) = diagnostics(&format!("{}{se}", vs("multi", body)));
    assert!(!ok);
    assert_at(
        &the(&d, "IST0112"),
        20,
        Severity::Error,
        Kind::VirtualService,
        "multi",
        "spec.http[0].route[0].destination.port",
    );
    // Naming the port resolves it.
    let named = body.replace(
        "{host: multi.example.com}",
        "{host: multi.example.com, port: {number: 8080}}",
    );
    let (ok, d) = diagnostics(&format!("{}{se}", vs("multi", &named)));
    assert!(ok, "{d:#?}");
}

#[test]
fn sy0112_unknown_gateway() {
    let body = "  hosts: ['*']\n  gateways: [nosuch-gateway]\n  http:\n  - route:\n    - destination: {host: productpage}\n";
    let (ok, d) = diagnostics(&vs("bookinfo", body));
    assert!(!ok);
    assert_at(
        &the(&d, "SY0112"),
        18,
        Severity::Error,
        Kind::VirtualService,
        "bookinfo",
        "spec.gateways[0]",
    );
}

#[test]
fn ist0109_two_virtual_services_for_one_host() {
    let body = "  hosts: [details]\n  http:\n  - route:\n    - destination: {host: details}\n";
    let (ok, d) = diagnostics(&vs("details-again", body));
    assert!(!ok);
    let d = the(&d, "IST0109");
    assert_at(
        &d,
        17,
        Severity::Error,
        Kind::VirtualService,
        "details-again",
        "spec.hosts[0]",
    );
    assert!(
        d.message.contains("test.yaml:2"),
        "names the filler VirtualService: {d}"
    );
}

#[test]
fn sy0114_unsupported_service_protocol() {
    let se = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: mongo\nspec:\n  hosts: [mongo.default.svc.cluster.local]\n  ports:\n  - {number: 27017, name: mongo, protocol: MONGO}\n  resolution: STATIC\n  endpoints:\n  - address: 127.0.9.1\n";
    let (ok, d) = diagnostics(se);
    assert!(!ok);
    let d = the(&d, "SY0114");
    assert_at(
        &d,
        19,
        Severity::Error,
        Kind::ServiceEntry,
        "mongo",
        "spec.ports[0].protocol",
    );
    assert!(d.message.contains("not supported yet"), "{d}");
}

#[test]
fn display_names_code_resource_location_and_field() {
    let (_, d) = diagnostics(&vs(
        "reviews",
        "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v9}\n",
    ));
    let text = the(&d, "IST0101").to_string();
    assert!(
        text.starts_with("Error [IST0101] (VirtualService default/reviews) test.yaml:20 spec.http[0].route[0].destination.subset: "),
        "{text}"
    );
}

#[test]
fn diagnostics_serialize_for_the_cli() {
    let (_, d) = diagnostics(&vs(
        "reviews",
        "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v9}\n",
    ));
    let json = serde_json::to_value(the(&d, "IST0101")).expect("serialize");
    assert_eq!(json["code"], "IST0101");
    assert_eq!(json["severity"], "Error");
    assert_eq!(json["line"], 20);
    assert_eq!(json["resource"]["kind"], "VirtualService");
    assert_eq!(json["field"], "spec.http[0].route[0].destination.subset");
}

#[test]
fn sy0116_service_entry_with_endpoints_and_workload_selector() {
    let se = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: both\nspec:\n  hosts: [both.example.com]\n  location: MESH_INTERNAL\n  ports:\n  - {number: 80, name: http, protocol: HTTP}\n  resolution: STATIC\n  endpoints:\n  - address: 127.0.9.1\n  workloadSelector: {labels: {app: both}}\n";
    let (ok, d) = diagnostics(se);
    assert!(!ok);
    assert_at(
        &the(&d, "SY0116"),
        24,
        Severity::Error,
        Kind::ServiceEntry,
        "both",
        "spec.workloadSelector",
    );
}

/// A ServiceEntry for `extra.example.com`, appended after the resource under test.
const EXTRA_SERVICE: &str = "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: extra\nspec:\n  hosts: [extra.example.com]\n  ports:\n  - {number: 80, name: http, protocol: HTTP}\n  resolution: DNS\n";

#[test]
fn sy0117_duplicate_subset_name() {
    let dr = format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: extra\nspec:\n  host: extra.example.com\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v1, labels: {{version: v2}}}}\n{EXTRA_SERVICE}");
    let (ok, d) = diagnostics(&dr);
    assert!(!ok);
    assert_at(
        &the(&d, "SY0117"),
        20,
        Severity::Error,
        Kind::DestinationRule,
        "extra",
        "spec.subsets[1].name",
    );
}

#[test]
fn sy0118_destination_rule_for_an_unknown_host_is_a_warning() {
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: nosuch\nspec:\n  host: nosuch.example.com\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n";
    let (ok, d) = diagnostics(dr);
    assert!(ok, "{d:#?}");
    assert_at(
        &the(&d, "SY0118"),
        17,
        Severity::Warning,
        Kind::DestinationRule,
        "nosuch",
        "spec.host",
    );
}

#[test]
fn sy0119_two_service_entries_for_one_host_names_the_first() {
    let se = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: reviews-again\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  location: MESH_INTERNAL\n  ports:\n  - {number: 9080, name: http, protocol: HTTP}\n  resolution: STATIC\n  workloadSelector: {labels: {app: reviews}}\n";
    let (ok, d) = diagnostics(se);
    assert!(!ok);
    let d = the(&d, "SY0119");
    assert_at(
        &d,
        17,
        Severity::Error,
        Kind::ServiceEntry,
        "reviews-again",
        "spec.hosts",
    );
    assert!(d.message.contains("mesh.yaml"), "names the first: {d}");
}

#[test]
fn sy0120_two_destination_rules_for_one_host_names_the_first() {
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: reviews-again\nspec:\n  host: reviews\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n";
    let (ok, d) = diagnostics(dr);
    assert!(!ok);
    let d = the(&d, "SY0120");
    assert_at(
        &d,
        17,
        Severity::Error,
        Kind::DestinationRule,
        "reviews-again",
        "spec.host",
    );
    assert!(d.message.contains("dr.yaml"), "names the first: {d}");
}

#[test]
fn sy0121_two_services_with_one_address() {
    let se = |name: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {name}\nspec:\n  hosts: [{name}.example.com]\n  addresses: [240.0.0.1]\n  ports:\n  - {{number: 80, name: http, protocol: HTTP}}\n  resolution: DNS\n")
    };
    let (ok, d) = diagnostics(&format!("{}---\n{}", se("a"), se("b")));
    assert!(!ok);
    let d = the(&d, "SY0121");
    assert_eq!(d.line, 29, "{d}");
    assert_eq!(d.field, "spec.addresses[0]");
    assert!(d.message.contains("ServiceEntry default/a"), "{d}");
}

#[test]
fn sy0129_header_operations_cannot_touch_host() {
    let body = "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n    headers:\n      request:\n        set: {host: evil}\n";
    let (ok, d) = diagnostics(&vs("reviews", body));
    assert!(!ok);
    let d = the(&d, "SY0129");
    assert_at(
        &d,
        23,
        Severity::Error,
        Kind::VirtualService,
        "reviews",
        "spec.http[0].headers.request.set",
    );
}

/// The line in `test.yaml` of the first line of `yaml` containing `needle` (the filler takes 11 lines).
fn line_of(yaml: &str, needle: &str) -> usize {
    11 + 1
        + yaml
            .lines()
            .position(|l| l.contains(needle))
            .expect("needle in yaml")
}

/// A ServiceEntry `extra.example.com` (port 80) and a DestinationRule `extra` for it with `policy` as its
/// `trafficPolicy` (indented by four spaces).
fn extra_with_policy(policy: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: extra\nspec:\n  hosts: [extra.example.com]\n  ports:\n  - {{number: 80, name: http, protocol: HTTP}}\n  resolution: DNS\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: extra\nspec:\n  host: extra.example.com\n  trafficPolicy:\n{policy}")
}

fn assert_dr_error(yaml: &str, code: &str, needle: &str, field: &str) -> Diagnostic {
    let (ok, d) = diagnostics(yaml);
    assert!(!ok, "{d:#?}");
    let d = the(&d, code);
    assert_at(
        &d,
        line_of(yaml, needle),
        Severity::Error,
        Kind::DestinationRule,
        "extra",
        field,
    );
    d
}

#[test]
fn sy0106_overflowing_duration_is_a_diagnostic_not_a_panic() {
    let huge = "340282366920938463463374607431768211455ns";
    let body = format!("  hosts: [reviews]\n  http:\n  - timeout: {huge}{huge}\n    route:\n    - destination: {{host: reviews}}\n");
    let (ok, d) = diagnostics(&vs("reviews", &body));
    assert!(!ok);
    assert_at(
        &the(&d, "SY0106"),
        19,
        Severity::Error,
        Kind::VirtualService,
        "reviews",
        "spec.http[0].timeout",
    );
}

#[test]
fn sy0106_zero_durations_where_envoy_needs_positive_ones() {
    for (policy, needle, field) in [
        (
            "    connectionPool:\n      tcp: {connectTimeout: 0s}\n",
            "connectTimeout",
            "spec.trafficPolicy.connectionPool.tcp.connectTimeout",
        ),
        (
            "    outlierDetection:\n      interval: 0s\n",
            "interval",
            "spec.trafficPolicy.outlierDetection.interval",
        ),
        (
            "    outlierDetection:\n      baseEjectionTime: 500us\n",
            "baseEjectionTime",
            "spec.trafficPolicy.outlierDetection.baseEjectionTime",
        ),
    ] {
        let d = assert_dr_error(&extra_with_policy(policy), "SY0106", needle, field);
        assert!(d.message.contains("at least 1ms"), "{d}");
    }
    let body = "  hosts: [ratings]\n  http:\n  - fault:\n      delay: {fixedDelay: 0s, percentage: {value: 100}}\n    route:\n    - destination: {host: ratings}\n    retries: {attempts: 2, backoff: 0ms}\n";
    let (ok, d) = diagnostics(&vs("ratings", body));
    assert!(!ok);
    let fields: Vec<&str> = d
        .iter()
        .filter(|d| d.code == "SY0106")
        .map(|d| d.field.as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "spec.http[0].fault.delay.fixedDelay",
            "spec.http[0].retries.backoff"
        ],
        "{d:#?}"
    );
}

#[test]
fn sy0115_maglev_table_size_must_be_prime() {
    let policy = "    loadBalancer:\n      consistentHash:\n        httpHeaderName: x-user\n        maglev: {tableSize: 65536}\n";
    assert_dr_error(
        &extra_with_policy(policy),
        "SY0115",
        "maglev",
        "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
    );
    let ok_policy = policy.replace("65536", "65537");
    let (ok, d) = diagnostics(&extra_with_policy(&ok_policy));
    assert!(ok, "{d:#?}");
}

#[test]
fn sy0115_ring_size_over_envoys_maximum() {
    let policy = "    loadBalancer:\n      consistentHash:\n        useSourceIp: true\n        ringHash: {minimumRingSize: 8388609}\n";
    assert_dr_error(
        &extra_with_policy(policy),
        "SY0115",
        "ringHash",
        "spec.trafficPolicy.loadBalancer.consistentHash.ringHash.minimumRingSize",
    );
}

#[test]
fn sy0103_weights_beyond_envoys_integers_are_rejected_not_clamped() {
    let body = "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 2147483648\n    - destination: {host: reviews, subset: v2}\n      weight: 1\n";
    let (ok, d) = diagnostics(&vs("reviews", body));
    assert!(!ok);
    assert_at(
        &the(&d, "SY0103"),
        21,
        Severity::Error,
        Kind::VirtualService,
        "reviews",
        "spec.http[0].route[0].weight",
    );
    let body = "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 2147483647\n    - destination: {host: reviews, subset: v2}\n      weight: 2147483647\n    - destination: {host: reviews, subset: v3}\n      weight: 2147483647\n";
    let (ok, d) = diagnostics(&vs("reviews", body));
    assert!(!ok);
    let d = the(&d, "SY0103");
    assert_eq!(d.field, "spec.http[0].route", "{d}");
    assert!(d.message.contains("4294967295"), "{d}");
}

#[test]
fn sy0130_cors_origin_presence_has_no_meaning() {
    for origin in ["{}", "{regex: '*'}"] {
        let body = format!("  hosts: [reviews]\n  http:\n  - corsPolicy:\n      allowOrigins:\n      - {origin}\n    route:\n    - destination: {{host: reviews}}\n");
        let (ok, d) = diagnostics(&vs("reviews", &body));
        assert!(!ok, "{origin}");
        let d = the(&d, "SY0130");
        assert_at(
            &d,
            21,
            Severity::Error,
            Kind::VirtualService,
            "reviews",
            "spec.http[0].corsPolicy.allowOrigins[0]",
        );
        assert!(d.message.contains("present"), "{d}");
    }
}

#[test]
fn sy0123_mirror_and_mirrors_together() {
    let body = "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n    mirror: {host: ratings}\n    mirrors:\n    - destination: {host: details}\n";
    let (ok, d) = diagnostics(&vs("reviews", body));
    assert!(!ok);
    assert_at(
        &the(&d, "SY0123"),
        22,
        Severity::Error,
        Kind::VirtualService,
        "reviews",
        "spec.http[0].mirrors",
    );
}

fn sidecar(name: &str, body: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: {name}\nspec:\n{body}")
}

#[test]
fn sy0132_sidecar_egress_host_without_namespace() {
    let (ok, d) = diagnostics(&sidecar(
        "reviews",
        "  workloadSelector: {labels: {app: reviews}}\n  egress:\n  - hosts:\n    - ./ratings.default.svc.cluster.local\n    - ratings.default.svc.cluster.local\n",
    ));
    assert!(!ok);
    let d = the(&d, "SY0132");
    assert_at(
        &d,
        21,
        Severity::Error,
        Kind::Sidecar,
        "reviews",
        "spec.egress[0].hosts[1]",
    );
    assert!(d.message.contains("namespace/dnsName"), "{d}");
}

#[test]
fn ist0111_two_sidecars_without_selector_in_one_namespace() {
    let body = "  egress:\n  - hosts: [./*]\n";
    let (ok, d) = diagnostics(&format!(
        "{}---\n{}",
        sidecar("a", body),
        sidecar("b", body)
    ));
    assert!(!ok);
    let d = the(&d, "IST0111");
    assert_eq!(
        d.resource.as_ref().map(|r| r.name.as_str()),
        Some("b"),
        "{d}"
    );
    assert!(
        d.message.contains("default/a") && d.message.contains("default/b"),
        "{d}"
    );
}

#[test]
fn ist0110_two_sidecars_select_one_workload() {
    let (ok, d) = diagnostics(&format!(
        "{}---\n{}",
        sidecar(
            "a",
            "  workloadSelector: {labels: {app: reviews}}\n  egress:\n  - hosts: [./*]\n"
        ),
        sidecar(
            "b",
            "  workloadSelector: {labels: {version: v1}}\n  egress:\n  - hosts: [./*]\n"
        ),
    ));
    assert!(!ok);
    let d = the(&d, "IST0110");
    assert!(d.message.contains("reviews-v1"), "{d}");
}

#[test]
fn sidecar_fields_not_implemented_are_load_errors() {
    let text = sidecar(
        "a",
        "  ingress:\n  - port: {number: 9080, protocol: HTTP}\n",
    );
    let errors = spec::load_str("sc.yaml", &text).expect_err("ingress is not supported yet");
    assert!(
        errors
            .0
            .iter()
            .any(|e| e.code == "SY0004" && e.message.contains("not supported yet")),
        "{errors:?}"
    );
}

/// A 5 MB value a resolution diagnostic quotes (here an unknown host and a 5 MB name) is shown by its start and
/// size, in the message printed, logged and served by `/debug/config` alike.
#[test]
fn long_values_are_shortened_in_resolution_diagnostics() {
    let host = "h".repeat(5_000_000);
    let name = "n".repeat(5_000_000);
    let (ok, d) = diagnostics(&vs(
        &name,
        &format!("  hosts: [reviews]\n  http:\n  - route:\n    - destination: {{host: {host}}}\n"),
    ));
    assert!(!ok);
    let d = the(&d, "SY0101");
    let shown = d.to_string();
    assert!(shown.len() < 1_000, "{} bytes", shown.len());
    assert!(shown.contains("hhhhhhhhhh… ("), "{shown}");
    assert!(shown.contains("nnnnnnnnnn… (5000000 bytes)"), "{shown}");
    assert!(serde_json::to_string(&d).unwrap().len() < 1_000);
}
