//! TLS to clusters (`sslmode`, `sslrootcert`) against the harness's target cluster, which runs
//! with `ssl = on`, a throw-away CA (`<cluster dir>/root.crt`) and a server certificate issued
//! for IP 127.0.0.1 only (scripts/pg-cluster.sh). Role `gpt_tls` may log in over TLS only, so
//! a session that works as `gpt_tls` is a TLS session.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::TestEnv;

const EVENTS: &str = "CREATE TABLE public.events (id bigint PRIMARY KEY, ts timestamp NOT NULL, v text)";

/// A job from `src` to `dst`, where `dst` is `gpt_tls@host` with the given TLS keys.
fn write_config(env: &TestEnv, host: &str, tls: &str) {
    env.write_config(&format!(
        r#"
[clusters.src]
url = "{{SRC_URL}}"
password_env = "GPT_SRC_PASSWORD"

[clusters.dst]
url = "postgres://gpt_tls@{host}:{{DST_PORT}}/{{DB}}"
password_env = "GPT_DST_PASSWORD"
{tls}

[state]
cluster = "dst"

[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
end = "2024-01-01 02:00:00"
duration = "1h"

[[jobs.j.tables]]
table = "public.events"
condition_column = "ts"
"#
    ));
}

/// OpenSSL's error codes and source locations differ between its builds.
fn openssl_filtered(out: support::CmdOutput) -> support::CmdOutput {
    out.with_filter(r"error:[0-9A-F]+:SSL routines:[^:]*:", "error:[OPENSSL]:")
        .with_filter(r"\.\./ssl/[^:]*:[0-9]+:", "[SOURCE]")
}

/// A CA that signed nothing the server has.
fn stranger_ca(env: &TestEnv) -> std::path::PathBuf {
    let ca = env.dir().join("stranger-ca.crt");
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-days", "1", "-subj", "/CN=stranger CA", "-keyout"])
        .arg(env.dir().join("stranger-ca.key"))
        .arg("-out")
        .arg(&ca)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    ca
}

#[test]
fn sslmodes_are_honoured_and_verify_modes_check_the_certificate() {
    let env = TestEnv::new("tls_sslmodes");
    env.src_psql(EVENTS);
    env.src_psql(
        "INSERT INTO public.events SELECT i, timestamp '2024-01-01' + i * interval '1 minute', 'v' || i \
         FROM generate_series(0, 119) i",
    );
    env.dst_psql(EVENTS);
    let root = env.dst.socket_dir.join("root.crt");
    assert!(root.is_file(), "the harness's cluster has no CA at {}", root.display());
    let root = root.display().to_string();

    // Plain TCP: the server refuses gpt_tls, and the error says to look at sslmode.
    write_config(&env, "127.0.0.1", r#"sslmode = "disable""#);
    let out = env.run(&["config", "check"]);
    out.assert_code(2);
    assert!(out.stderr.contains("no encryption"), "{}", out.render());
    cli_snapshot!("tls_disable_refused", out);

    // require: encrypted, the certificate not checked; the windows land over TLS.
    write_config(&env, "127.0.0.1", r#"sslmode = "require""#);
    let run = env.run(&["run"]);
    run.assert_success();
    assert_eq!(env.dst_psql("SELECT count(*) FROM public.events"), "120");
    assert_eq!(env.dst_psql("SELECT count(*), sum(rows_written) FROM gptransfer.history"), "2|120");

    // The default (prefer) takes TLS when offered.
    write_config(&env, "127.0.0.1", "");
    env.run(&["config", "check"]).assert_success();

    // verify-full with the server's CA, to the host its certificate names.
    write_config(&env, "127.0.0.1", &format!("sslmode = \"verify-full\"\nsslrootcert = \"{root}\""));
    env.run(&["config", "check"]).assert_success();

    // verify-ca with another CA: refused, with what to check.
    let stranger = stranger_ca(&env).display().to_string();
    write_config(&env, "127.0.0.1", &format!("sslmode = \"verify-ca\"\nsslrootcert = \"{stranger}\""));
    let out = env.run(&["config", "check"]);
    out.assert_code(2);
    assert!(out.stderr.contains("certificate verify failed"), "{}", out.render());
    assert!(out.stderr.contains("check sslmode and sslrootcert"), "{}", out.render());
    cli_snapshot!("tls_stranger_ca_refused", openssl_filtered(out));

    // "localhost" is not the name on the certificate: verify-ca accepts it, verify-full does not.
    write_config(&env, "localhost", &format!("sslmode = \"verify-ca\"\nsslrootcert = \"{root}\""));
    env.run(&["config", "check"]).assert_success();
    write_config(&env, "localhost", &format!("sslmode = \"verify-full\"\nsslrootcert = \"{root}\""));
    let out = env.run(&["config", "check"]);
    out.assert_code(2);
    assert!(out.stderr.contains("certificate verify failed"), "{}", out.render());
    cli_snapshot!("tls_host_name_mismatch_refused", openssl_filtered(out));

    // A CA file without a verify mode is a mistake in the config.
    write_config(&env, "127.0.0.1", &format!("sslmode = \"require\"\nsslrootcert = \"{root}\""));
    let out = env.run(&["config", "check"]);
    out.assert_code(2);
    assert!(out.stderr.contains("sslrootcert is only used with sslmode"), "{}", out.render());

    // verify-full without any CA: said before connecting.
    write_config(&env, "127.0.0.1", r#"sslmode = "verify-full""#);
    let out = env.run(&["config", "check"]);
    out.assert_code(2);
    assert!(out.stderr.contains("no CA is given: set sslrootcert"), "{}", out.render());
}

/// libpq's `PGSSLMODE` and `PGSSLROOTCERT` are honoured where the config sets no sslmode, as
/// `PGHOST` and the others are: a user who exports `PGSSLMODE=verify-full` got `prefer`, and
/// the password went to a server whose certificate nobody checked (seen: config check said ok
/// with a CA that signed nothing of the server's). The config's own sslmode still wins.
#[test]
fn pgsslmode_and_pgsslrootcert_from_the_environment_are_honoured() {
    let env = TestEnv::new("tls_pgsslmode");
    env.src_psql(EVENTS);
    env.dst_psql(EVENTS);
    let root = env.dst.socket_dir.join("root.crt").display().to_string();
    let stranger = stranger_ca(&env).display().to_string();
    let check = |vars: &[(&str, &str)]| {
        let mut cmd = env.command(&["config", "check"]);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        env.spawn_command(cmd).wait()
    };
    // The source's own sslmode keeps it out of the environment's (it has another CA).
    let config = |tls: &str| {
        write_config(&env, "127.0.0.1", tls);
        let path = env.dir().join("gptransfer.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let src = "password_env = \"GPT_SRC_PASSWORD\"";
        std::fs::write(&path, text.replacen(src, &format!("{src}\nsslmode = \"prefer\""), 1)).unwrap();
    };
    config("");
    let out = check(&[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &stranger)]);
    out.assert_code(2);
    assert!(out.stderr.contains("certificate verify failed"), "{}", out.render());
    check(&[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &root)]).assert_success();
    let out = check(&[("PGSSLMODE", "disable")]);
    out.assert_code(2);
    assert!(out.stderr.contains("no encryption"), "{}", out.render());
    let out = check(&[("PGSSLMODE", "very-safe")]);
    out.assert_code(2);
    assert!(out.stderr.contains("PGSSLMODE"), "{}", out.render());
    // A root certificate in the environment means nothing to prefer, as to libpq.
    check(&[("PGSSLROOTCERT", &stranger)]).assert_success();
    // The config's sslmode wins over the environment's.
    config(r#"sslmode = "require""#);
    check(&[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &stranger)]).assert_success();
}

/// A TCP proxy (tests/fixtures/tls-breaking-proxy) that says yes to TLS and then sends no TLS
/// at all, forwarding every plain connection to the target cluster: how an old server whose TLS
/// this OpenSSL refuses looks to us. Killed when dropped.
struct BrokenTlsProxy {
    child: std::process::Child,
    port: u16,
}

impl BrokenTlsProxy {
    fn start(env: &TestEnv) -> BrokenTlsProxy {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls-breaking-proxy/proxy.py");
        let port_file = env.dir().join("proxy.port");
        let child = Command::new("python3")
            .arg(&script)
            .arg(&port_file)
            .arg(env.dst.port.to_string())
            .spawn()
            .expect("python3 runs the TLS-breaking proxy");
        let mut proxy = BrokenTlsProxy { child, port: 0 };
        for _ in 0..100 {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                proxy.port = text.trim().parse().unwrap();
                return proxy;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the proxy did not start (no {})", port_file.display());
    }
}

impl Drop for BrokenTlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `prefer` (the default) falls back to plain TCP when the TLS handshake fails, as libpq does;
/// `require` refuses, saying what to check.
#[test]
fn prefer_falls_back_to_plain_tcp_when_the_tls_handshake_fails() {
    let env = TestEnv::new("tls_prefer_fallback");
    env.src_psql(EVENTS);
    env.src_psql(
        "INSERT INTO public.events SELECT i, timestamp '2024-01-01' + i * interval '1 minute', 'v' || i \
         FROM generate_series(0, 119) i",
    );
    env.dst_psql(EVENTS);
    let proxy = BrokenTlsProxy::start(&env);
    let config = |tls: &str| {
        format!(
            r#"
[clusters.src]
url = "{{SRC_URL}}"
password_env = "GPT_SRC_PASSWORD"

[clusters.dst]
url = "postgres://gpt@127.0.0.1:{port}/{{DB}}"
password_env = "GPT_DST_PASSWORD"
{tls}

[state]
cluster = "dst"

[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
end = "2024-01-01 02:00:00"
duration = "1h"

[[jobs.j.tables]]
table = "public.events"
condition_column = "ts"
"#,
            port = proxy.port
        )
    };
    env.write_config(&config(r#"sslmode = "require""#));
    let out = env.run(&["config", "check"]);
    out.assert_code(2);
    assert!(out.stderr.contains("error performing TLS handshake"), "{}", out.render());
    assert!(out.stderr.contains("check sslmode and sslrootcert"), "{}", out.render());

    env.write_config(&config(""));
    let run = env.run(&["run"]);
    assert_eq!(run.code, 0, "{}", run.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM public.events"), "120");
}
