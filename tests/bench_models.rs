//! `genolm bench models`: the scaling benchmark's JSON, files and errors (tiny lengths only; the
//! real measurements are in the README).

mod common;

use common::{expect_error, run_ok};

#[test]
fn json_lists_every_model_and_length_with_peak_heap() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(&[
        "--threads",
        "1",
        "bench",
        "models",
        "--models",
        "gb-cnn,cnn",
        "--min-length",
        "128",
        "--max-length",
        "512",
        "--repeat",
        "1",
        "--json",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pts = v.as_array().unwrap();
    let got: Vec<(String, u64)> = pts
        .iter()
        .map(|p| {
            (
                p["model"].as_str().unwrap().to_string(),
                p["length"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = ["gb-cnn", "cnn"]
        .iter()
        .flat_map(|m| [128u64, 256, 512].map(|l| (m.to_string(), l)))
        .collect();
    assert_eq!(got, want);
    for p in pts {
        assert!(p["seconds"].as_f64().unwrap() > 0.0);
        // The binary installs the counting allocator: a forward + backward pass allocates.
        assert!(p["peak_bytes"].as_u64().unwrap() > 0, "{p}");
    }
    // The dilated CNN's activations grow with length: more heap at 512 than at 128.
    let cnn: Vec<u64> = pts
        .iter()
        .filter(|p| p["model"] == "cnn")
        .map(|p| p["peak_bytes"].as_u64().unwrap())
        .collect();
    assert!(cnn[2] > cnn[0], "{cnn:?}");
    for f in [
        "scaling.json",
        "scaling.md",
        "scaling_time.svg",
        "scaling_memory.svg",
    ] {
        let text = std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert!(!text.is_empty(), "{f}");
    }
    let md = std::fs::read_to_string(dir.path().join("scaling.md")).unwrap();
    assert_eq!(md.lines().count(), 2 + 6, "{md}");
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    for (args, needle) in [
        (&["--models", "nosuch"][..], "nosuch"),
        (&["--min-length", "0"][..], "length"),
        (
            &["--min-length", "512", "--max-length", "256"][..],
            "length",
        ),
    ] {
        let mut all = vec!["bench", "models"];
        all.extend_from_slice(args);
        expect_error(&all, needle);
    }
}
