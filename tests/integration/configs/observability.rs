//! Loki, Alloy and Grafana: the config each is given, parsed (YAML, Alloy's own syntax) and
//! checked against stack.toml and the Compose file that runs it.

use serde_yaml::Value;

use super::{DOKPLOY_FILE, config_mount, rendered, service};
use crate::alloy::{self, Block, Value as A};
use crate::support::{yget, ystr};

#[test]
fn loki_config_is_a_single_binary_with_tsdb_v13_and_retention_from_stack_toml() {
    let s = rendered("pgcat");
    let (target, rel) = config_mount(&s, "loki", "loki_yaml");
    let loki = s.yaml(&rel);
    let command: Vec<String> = service(&s, "loki")["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(ystr)
        .collect();
    assert!(
        command.contains(&format!("-config.file={target}")),
        "{command:?}"
    );

    let get = |p: &str| {
        yget(&loki, p)
            .map(ystr)
            .unwrap_or_else(|| panic!("loki.yaml lacks {p}"))
    };
    assert!(
        yget(&loki, "common.storage.filesystem").is_some_and(Value::is_mapping),
        "common.storage.filesystem"
    );
    assert_eq!(get("common.replication_factor"), "1");
    assert_eq!(get("common.ring.kvstore.store"), "inmemory");
    let schemas = yget(&loki, "schema_config.configs")
        .and_then(Value::as_sequence)
        .expect("schema_config.configs");
    assert_eq!(schemas.len(), 1);
    let sc = &schemas[0];
    assert_eq!(ystr(&sc["store"]), "tsdb");
    assert_eq!(ystr(&sc["schema"]), "v13");
    assert_eq!(ystr(&sc["object_store"]), "filesystem");
    assert_eq!(ystr(&sc["index"]["period"]), "24h");
    assert_eq!(get("compactor.retention_enabled"), "true");
    assert_eq!(get("compactor.delete_request_store"), "filesystem");
    assert_eq!(
        get("limits_config.retention_period"),
        "336h",
        "retention comes from stack.toml"
    );
    assert_eq!(get("server.http_listen_port"), "3100");
    // Loki's data lives on the named volume.
    let path_prefix = get("common.path_prefix");
    let vols: Vec<String> = service(&s, "loki")["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(ystr)
        .collect();
    assert!(
        vols.iter()
            .any(|v| v.starts_with("loki-data:") && v.ends_with(&format!(":{path_prefix}"))),
        "{vols:?}"
    );
}

fn block<'a>(blocks: &'a [Block], name: &str) -> &'a Block {
    let found: Vec<&Block> = blocks.iter().filter(|b| b.name == name).collect();
    assert_eq!(found.len(), 1, "expected one {name} block");
    found[0]
}

fn reference(v: Option<&A>) -> &str {
    match v {
        Some(A::Ref(r)) => r,
        other => panic!("expected a reference, found {other:?}"),
    }
}

fn strings(v: Option<&A>) -> Vec<&str> {
    match v {
        Some(A::List(l)) => l.iter().map(|x| x.as_str().expect("a string")).collect(),
        other => panic!("expected a list of strings, found {other:?}"),
    }
}

#[test]
fn alloy_ships_docker_logs_to_loki_labelled_with_the_compose_service() {
    let s = rendered("pgcat");
    let (target, rel) = config_mount(&s, "alloy", "alloy_config");
    let blocks = alloy::parse(&s.read(&rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let label = |b: &Block| {
        b.label
            .clone()
            .unwrap_or_else(|| panic!("{} has no label", b.name))
    };

    // discovery.docker, on the mounted socket.
    let docker = block(&blocks, "discovery.docker");
    assert_eq!(
        docker.attr("host").and_then(A::as_str),
        Some("unix:///var/run/docker.sock")
    );

    // discovery.relabel: the leading `/` of the container name stripped; the service label.
    let relabel = block(&blocks, "discovery.relabel");
    let rules: Vec<&Block> = relabel.blocks_named("rule").collect();
    let name_rule = rules
        .iter()
        .find(|r| strings(r.attr("source_labels")) == ["__meta_docker_container_name"])
        .expect("a rule on the container name");
    assert_eq!(
        name_rule.attr("regex").and_then(A::as_str),
        Some("/(.*)"),
        "strips the leading /"
    );
    assert!(matches!(
        name_rule.attr("replacement"),
        None | Some(A::Str(_))
    ));
    if let Some(r) = name_rule.attr("replacement") {
        assert_eq!(r.as_str(), Some("$1"));
    }
    assert!(
        name_rule
            .attr("action")
            .is_none_or(|a| a.as_str() == Some("replace"))
    );
    let service_rule = rules
        .iter()
        .find(|r| {
            strings(r.attr("source_labels"))
                == ["__meta_docker_container_label_com_docker_compose_service"]
        })
        .expect("a rule on the compose service label");
    assert_eq!(
        service_rule.attr("target_label").and_then(A::as_str),
        Some("service")
    );
    assert!(
        service_rule
            .attr("action")
            .is_none_or(|a| a.as_str() == Some("replace"))
    );

    // loki.source.docker: reads the discovered containers with the relabel rules applied. Both
    // documented wirings are accepted: `targets = discovery.relabel.R.output`, or (Grafana's own
    // Docker example) `targets = discovery.docker.D.targets` + `relabel_rules = discovery.relabel.R.rules`.
    let source = block(&blocks, "loki.source.docker");
    assert_eq!(
        source.attr("host").and_then(A::as_str),
        Some("unix:///var/run/docker.sock")
    );
    let d = format!("discovery.docker.{}", label(docker));
    let r = format!("discovery.relabel.{}", label(relabel));
    let targets = reference(source.attr("targets"));
    if targets == format!("{r}.output") {
        assert_eq!(reference(relabel.attr("targets")), format!("{d}.targets"));
    } else {
        assert_eq!(targets, format!("{d}.targets"));
        assert_eq!(
            reference(source.attr("relabel_rules")),
            format!("{r}.rules")
        );
    }

    // loki.write: the receiver the source forwards to, pushing to Loki's push API.
    let write = block(&blocks, "loki.write");
    let Some(A::List(forward)) = source.attr("forward_to") else {
        panic!("forward_to")
    };
    assert_eq!(
        forward,
        &vec![A::Ref(format!("loki.write.{}.receiver", label(write)))]
    );
    let endpoints: Vec<&Block> = write.blocks_named("endpoint").collect();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(
        endpoints[0].attr("url").and_then(A::as_str),
        Some("http://loki:3100/loki/api/v1/push")
    );
    assert!(
        s.yaml(DOKPLOY_FILE)["services"]["loki"].is_mapping(),
        "the push URL names the loki service"
    );

    // The Compose service: this config, the Docker socket, and a volume for its positions.
    let svc = service(&s, "alloy");
    let command: Vec<String> = svc["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(ystr)
        .collect();
    assert!(
        command.contains(&target),
        "alloy runs {command:?}, not {target}"
    );
    let storage = command
        .iter()
        .find_map(|c| c.strip_prefix("--storage.path="))
        .expect("--storage.path (where Alloy keeps its positions)");
    let vols: Vec<String> = svc["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(ystr)
        .collect();
    assert!(
        vols.iter()
            .any(|v| v.starts_with("/var/run/docker.sock:/var/run/docker.sock")),
        "{vols:?}"
    );
    let named: Vec<String> = s.yaml(DOKPLOY_FILE)["volumes"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(ystr)
        .collect();
    assert!(
        vols.iter().any(|v| {
            let mut p = v.split(':');
            let (src, dst) = (p.next().unwrap(), p.next().unwrap_or(""));
            named.iter().any(|n| n == src) && dst == storage
        }),
        "no named volume at {storage}: {vols:?}"
    );
}

#[test]
fn grafana_provisions_loki_as_default_and_the_dashboard_from_where_it_is_mounted() {
    let s = rendered("pgcat");
    let (ds_target, ds_rel) = config_mount(&s, "grafana", "grafana_datasources");
    let (dash_target, dash_rel) = config_mount(&s, "grafana", "grafana_dashboards");
    let (json_target, json_rel) = config_mount(&s, "grafana", "grafana_dashboard_logs");
    assert!(
        ds_target.starts_with("/etc/grafana/provisioning/datasources/"),
        "{ds_target}"
    );
    assert!(
        dash_target.starts_with("/etc/grafana/provisioning/dashboards/"),
        "{dash_target}"
    );

    let ds = s.yaml(&ds_rel);
    assert_eq!(ystr(&ds["apiVersion"]), "1");
    let list = ds["datasources"].as_sequence().expect("datasources");
    // Loki, and Prometheus for the metric dashboards (checked in metrics::provisioning).
    assert_eq!(list.len(), 2);
    assert_eq!(ystr(&list[1]["type"]), "prometheus");
    let loki = &list[0];
    assert_eq!(ystr(&loki["type"]), "loki");
    assert_eq!(ystr(&loki["url"]), "http://loki:3100");
    assert_eq!(loki["isDefault"], Value::Bool(true));
    let uid = ystr(&loki["uid"]);
    assert!(!uid.is_empty());

    let dash = s.yaml(&dash_rel);
    assert_eq!(ystr(&dash["apiVersion"]), "1");
    let providers = dash["providers"].as_sequence().expect("providers");
    assert_eq!(providers.len(), 1);
    assert_eq!(ystr(&providers[0]["type"]), "file");
    let dir = ystr(&providers[0]["options"]["path"]);
    assert_eq!(
        std::path::Path::new(&json_target)
            .parent()
            .unwrap()
            .to_str()
            .unwrap(),
        dir.trim_end_matches('/')
    );

    // The dashboard: valid JSON; every query selects by `service` and uses the Loki data source.
    let json: serde_json::Value = serde_json::from_str(&s.read(&json_rel)).expect("dashboard JSON");
    let panels = json["panels"].as_array().expect("panels");
    let mut queries = 0;
    for p in panels {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            assert!(expr.contains("{service=~\"$service\"}"), "{expr}");
            assert_eq!(t["datasource"]["type"], "loki");
            assert_eq!(t["datasource"]["uid"], uid.as_str(), "{expr}");
            queries += 1;
        }
        assert_eq!(p["datasource"]["uid"], uid.as_str());
    }
    assert!(queries >= 1);
    let vars = json["templating"]["list"].as_array().unwrap();
    let service_var = vars
        .iter()
        .find(|v| v["name"] == "service")
        .expect("a `service` variable");
    assert_eq!(service_var["datasource"]["uid"], uid.as_str());
    assert_eq!(service_var["query"]["label"], "service");
}
