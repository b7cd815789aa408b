//! `monitor run --check-config` with the export settings a unit drop-in sets: a short
//! interval alone is valid (the default timeout fits it), a per-signal endpoint alone
//! enables export, and a timeout from the environment that does not fit names the
//! variable it came from (exit 64).

use std::process::{Command, Output};

use xtask::{PinDir, TempDir, Testbed, monitor_bin};

fn check_config(tb: &Testbed, dir: &TempDir, export: &str, env: &[(&str, &str)]) -> Output {
    let pin = PinDir::new();
    let path = dir.join("monitor.toml");
    std::fs::write(
        &path,
        format!(
            "{}{export}",
            xtask::config::gateway_config(pin.path(), &dir.join("s.sock"))
        ),
    )
    .unwrap();
    Command::new("nsenter")
        .arg(format!("--net={}", tb.gw.path().display()))
        .arg("--")
        .arg(monitor_bin())
        .args(["run", "--check-config", "--config"])
        .arg(&path)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run monitor")
}

#[test]
fn drop_in_export_settings_are_checked_as_the_user_wrote_them() {
    let tb = Testbed::new().expect("testbed");
    let dir = TempDir::new().unwrap();

    let ok = |out: Output| {
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("is valid"));
    };
    // The case: only the interval, in the file or the environment.
    ok(check_config(
        &tb,
        &dir,
        "\n[export]\notlp_endpoint = \"http://127.0.0.1:4317\"\ninterval_ms = 2000\n",
        &[],
    ));
    ok(check_config(
        &tb,
        &dir,
        "",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "2000"),
        ],
    ));
    ok(check_config(
        &tb,
        &dir,
        "",
        &[(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "https://collector.example:4318/v1/metrics",
        )],
    ));

    let out = check_config(
        &tb,
        &dir,
        "",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "2000"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "5000"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_TIMEOUT") && stderr.contains("5000 is out of range"),
        "{stderr}"
    );
    assert!(!stderr.contains("export.timeout_ms"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
