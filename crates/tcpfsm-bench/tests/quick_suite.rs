//! The whole suite at tiny sizes, as CI runs it, so it cannot rot: every workload completes
//! for both stacks and reports what BENCHMARKS.md describes. No speed is asserted here
//! (speed targets live in the benchmark's own output, never in tests).

use std::process::Command;

use serde_json::Value;

#[test]
fn quick_suite_runs_every_workload_for_both_stacks_and_writes_json_lines() {
    let json =
        std::env::temp_dir().join(format!("tcpfsm-bench-quick-{}.jsonl", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_tcpfsm-bench"))
        .args(["all", "--quick", "--json"])
        .arg(&json)
        .output()
        .expect("run tcpfsm-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "suite failed:\n{stdout}\n{stderr}");
    let text = std::fs::read_to_string(&json).expect("JSON lines written");
    std::fs::remove_file(&json).ok();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines[0]["suite"], "tcpfsm-bench");
    let cases: Vec<&Value> = lines.iter().filter(|l| l.get("case").is_some()).collect();
    let root = tcpfsm_testkit::is_root();
    for workload in ["checksum", "bulk", "lifecycle", "memory", "tun"] {
        let of: Vec<_> = cases.iter().filter(|c| c["workload"] == workload).collect();
        assert!(!of.is_empty(), "no {workload} case in the output");
        for c in of {
            let skipped_ours = c["notes"]["tcpfsm"].as_array().is_some_and(|n| {
                n.iter()
                    .any(|s| s.as_str().unwrap_or("").starts_with("SKIPPED"))
            });
            if workload == "tun" && !root {
                assert!(skipped_ours, "TUN without root must say it skipped: {c}");
                continue;
            }
            // Every variant runs on both stacks (checksums off too: `Config::checksum_offload`).
            assert!(!skipped_ours, "{c}");
            for stack in ["tcpfsm", "smoltcp"] {
                let median = &c["metrics"][0][stack]["median"];
                let v = median
                    .as_f64()
                    .unwrap_or_else(|| panic!("{stack} has no result: {c}"));
                assert!(v.is_finite() && v > 0.0, "{stack}: {v} in {c}");
            }
        }
    }
    if !root {
        tcpfsm_testkit::skip("needs root", "the TUN part of the quick suite");
    }
    // Segment counts are facts about the protocol, not speed: a lifecycle connection takes at
    // least SYN, SYN-ACK, ACK, two data segments and two FINs.
    let lc = cases.iter().find(|c| c["workload"] == "lifecycle").unwrap();
    let segs = lc["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "segments")
        .unwrap();
    for stack in ["tcpfsm", "smoltcp"] {
        let n = segs[stack]["median"].as_f64().unwrap();
        assert!(
            (7.0..=12.0).contains(&n),
            "{stack}: {n} segments per connection"
        );
    }
    assert!(stdout.contains("record sizes"), "{stdout}");
}
