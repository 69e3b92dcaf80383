//! TLS to clusters, with libpq's `sslmode` meanings, on the system OpenSSL (which `ssh2`
//! links already).

use std::path::{Path, PathBuf};

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use postgres_openssl::MakeTlsConnector;

use crate::config::SslMode;

/// How a cluster's sessions are secured.
#[derive(Clone)]
pub(super) enum Tls {
    /// Plain TCP.
    Off,
    /// TLS as `mode` says (prefer falls back to plain TCP).
    On { mode: SslMode, connector: MakeTlsConnector },
}

/// libpq's default CA file for verify-ca / verify-full.
fn default_root_cert() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let path = PathBuf::from(home).join(".postgresql").join("root.crt");
    path.is_file().then_some(path)
}

/// The TLS set-up of `mode`; `pg` gets the matching wire mode.
pub(super) fn setup(mode: SslMode, root_cert: Option<&Path>, pg: &mut tokio_postgres::Config) -> Result<Tls, String> {
    use tokio_postgres::config::SslMode as Wire;
    let wire = match mode {
        SslMode::Disable => {
            pg.ssl_mode(Wire::Disable);
            return Ok(Tls::Off);
        }
        SslMode::Prefer => Wire::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Wire::Require,
    };
    pg.ssl_mode(wire);
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(|e| format!("cannot set up TLS: {e}"))?;
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) {
        let ca = root_cert.map(Path::to_path_buf).or_else(default_root_cert).ok_or_else(|| {
            format!(
                "sslmode {} checks the server's certificate, but no CA is given: set sslrootcert \
                 (or put the CA in ~/.postgresql/root.crt, as libpq does)",
                name(mode)
            )
        })?;
        builder
            .set_ca_file(&ca)
            .map_err(|e| format!("sslrootcert {}: not a readable PEM CA file: {e}", ca.display()))?;
        builder.set_verify(SslVerifyMode::PEER);
    } else {
        // prefer / require: encrypted, the certificate not checked (libpq's meaning).
        builder.set_verify(SslVerifyMode::NONE);
    }
    let mut connector = MakeTlsConnector::new(builder.build());
    if mode != SslMode::VerifyFull {
        connector.set_callback(|config, _host| {
            config.set_verify_hostname(false);
            Ok(())
        });
    }
    Ok(Tls::On { mode, connector })
}

/// As written in the config and in libpq's `PGSSLMODE`.
pub fn name(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}
