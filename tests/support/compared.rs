//! Reading `compare --output json`: the windows, their differences, and "all equal".

use std::collections::BTreeSet;

use serde_json::Value;

use super::{CmdOutput, TestEnv};

/// `compare --output json` with extra arguments: the run and its parsed output.
pub fn compare_json(env: &TestEnv, args: &[&str]) -> (CmdOutput, Value) {
    let mut all = vec!["compare", "--output", "json"];
    all.extend_from_slice(args);
    let out = env.run(&all);
    let value: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("compare --output json is not JSON: {e}\n{}", out.render()));
    (out, value)
}

pub fn compared_windows(value: &Value) -> &Vec<Value> {
    value["windows"].as_array().unwrap_or_else(|| panic!("no windows array in {value}"))
}

/// Every `(kind, key)` of every window.
pub fn differences(value: &Value) -> BTreeSet<(String, String)> {
    compared_windows(value)
        .iter()
        .flat_map(|w| w["differences"].as_array().unwrap().iter())
        .map(|d| (d["kind"].as_str().unwrap().to_string(), d["key"].as_str().unwrap().to_string()))
        .collect()
}

/// Every window equal, without error; returns the rows compared.
pub fn assert_all_equal(value: &Value) -> i64 {
    let mut rows = 0;
    for w in compared_windows(value) {
        assert_eq!(w["equal"], true, "{w:#}");
        assert!(w["error"].is_null(), "{w:#}");
        assert_eq!(w["source_count"], w["target_count"], "{w:#}");
        rows += w["source_count"].as_i64().unwrap();
    }
    rows
}
