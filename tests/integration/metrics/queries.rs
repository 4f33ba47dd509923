//! What the provisioned dashboards and alert rules ask Prometheus for: every PromQL expression
//! (Grafana panels whose data source is Prometheus, and the rules file), and the metric names
//! each one reads, found by parsing the expression with `promql-parser` (Prometheus's grammar),
//! not by pattern matching.

use std::collections::BTreeSet;

use promql_parser::parser::{self, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};

/// The Prometheus data source's uid (observability/grafana/datasources.yaml).
pub const PROMETHEUS_UID: &str = "prometheus";

/// One expression and where it comes from (for failure messages).
#[derive(Debug, Clone)]
pub struct Query {
    pub from: String,
    pub expr: String,
}

/// Every Prometheus target expression of a Grafana dashboard (JSON text): the panels' targets
/// whose data source (the target's, else the panel's) is of type `prometheus`.
pub fn dashboard_queries(name: &str, json: &str) -> Vec<Query> {
    let d: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
    let mut out = Vec::new();
    let panels = d["panels"].as_array().cloned().unwrap_or_default();
    for p in &panels {
        for t in p["targets"].as_array().cloned().unwrap_or_default() {
            let ds = if t["datasource"].is_object() {
                &t["datasource"]
            } else {
                &p["datasource"]
            };
            if ds["type"] == "prometheus" {
                out.push(Query {
                    from: format!("{name}: panel {:?}", p["title"].as_str().unwrap_or("?")),
                    expr: t["expr"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{name}: a Prometheus target without expr"))
                        .to_string(),
                });
            }
        }
    }
    out
}

/// Every rule expression of a Prometheus rules file (YAML text).
pub fn rule_queries(name: &str, yaml: &str) -> Vec<Query> {
    let v: serde_yaml::Value =
        serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{name} is not YAML: {e}"));
    let mut out = Vec::new();
    for g in v["groups"].as_sequence().cloned().unwrap_or_default() {
        for r in g["rules"].as_sequence().cloned().unwrap_or_default() {
            let rule = r["alert"].as_str().or(r["record"].as_str()).unwrap_or("?");
            out.push(Query {
                from: format!("{name}: rule {rule}"),
                expr: r["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name}: rule {rule} has no expr"))
                    .to_string(),
            });
        }
    }
    out
}

struct Names(BTreeSet<String>);

impl ExprVisitor for Names {
    type Error = String;
    fn pre_visit(&mut self, e: &Expr) -> Result<bool, String> {
        let vs = match e {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &ms.vs,
            _ => return Ok(true),
        };
        match &vs.name {
            Some(n) => {
                self.0.insert(n.clone());
                Ok(true)
            }
            None => Err(format!(
                "a selector without a metric name ({vs}): name the metric"
            )),
        }
    }
}

/// The metric names `q` reads. Grafana's interval variables become `5m` first (they are not
/// PromQL); any other `$variable` is an error, since it could stand for any metric.
pub fn metric_names(q: &Query) -> Result<BTreeSet<String>, String> {
    let expr = q
        .expr
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "5m")
        .replace("$__range", "5m");
    if expr.contains('$') {
        return Err(format!("{}: a variable in `{}`", q.from, q.expr));
    }
    let ast = parser::parse(&expr).map_err(|e| format!("{}: `{}`: {e}", q.from, q.expr))?;
    let mut names = Names(BTreeSet::new());
    walk_expr(&mut names, &ast).map_err(|e| format!("{}: {e}", q.from))?;
    if names.0.is_empty() {
        return Err(format!("{}: `{}` reads no metric", q.from, q.expr));
    }
    Ok(names.0)
}

#[test]
fn metric_names_come_from_the_parse_tree() {
    let q = |e: &str| Query {
        from: "t".into(),
        expr: e.into(),
    };
    let names = metric_names(&q(
        "histogram_quantile(0.99, sum by (le) (rate(a_bucket{x=\"rate(b)\"}[$__rate_interval]))) / on() group_left c or vector(0)",
    ))
    .unwrap();
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["a_bucket", "c"]);
    assert!(metric_names(&q("sum(rate(x[5m])")).is_err(), "unbalanced");
    assert!(metric_names(&q("{job=\"x\"}")).is_err(), "no metric name");
    assert!(metric_names(&q("vector(1)")).is_err(), "reads no metric");
    assert!(metric_names(&q("up{job=\"$job\"}")).is_err(), "a variable");
}
