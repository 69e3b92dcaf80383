//! What can be checked of the container image without building it (scripts/image.sh builds
//! and smoke-tests it, on request): the Containerfile's contract, the libraries the binary
//! links against what the image installs, and the config variable the image relies on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn containerfile() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/Containerfile");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Containerfile's instructions, one string each: comments dropped, continuation lines
/// joined.
fn instructions() -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in containerfile().lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part.trim_end());
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    assert!(current.is_empty(), "the Containerfile ends inside a continued line");
    out
}

/// The arguments of the instructions named `keyword`.
fn all(keyword: &str) -> Vec<String> {
    instructions()
        .into_iter()
        .filter_map(|i| {
            let (word, rest) = i.split_once(' ')?;
            word.eq_ignore_ascii_case(keyword).then(|| rest.trim().to_string())
        })
        .collect()
}

fn last(keyword: &str) -> String {
    all(keyword).pop().unwrap_or_else(|| panic!("the Containerfile has no {keyword}"))
}

#[test]
fn the_containerfile_keeps_its_contract() {
    assert_eq!(all("FROM"), ["debian:bookworm-slim"], "one stage, on Debian 12 slim");
    assert_eq!(last("ENTRYPOINT"), r#"["gptransfer"]"#);
    let user = last("USER");
    let name = user.split(':').next().unwrap();
    assert!(!["root", "0", ""].contains(&name), "the image must not run as root: USER {user}");
    assert!(
        all("ENV").iter().any(|e| e == "GPTRANSFER_CONFIG=/etc/gptransfer/gptransfer.toml"),
        "the config is read from /etc/gptransfer/gptransfer.toml: {:?}",
        all("ENV")
    );
    let labels = all("LABEL").join(" ");
    for label in ["version", "source", "revision"] {
        assert!(
            labels.contains(&format!("org.opencontainers.image.{label}=")),
            "no OCI label org.opencontainers.image.{label}: {labels}"
        );
    }
    // Secrets are mounted or passed by name at run time, never baked in.
    for i in instructions() {
        let upper = i.to_uppercase();
        assert!(
            !(upper.starts_with("ENV") || upper.starts_with("ARG")) || !upper.contains("PASSWORD"),
            "a password in the image: {i}"
        );
    }
}

/// Packages of debian:bookworm-slim that the binary's libraries come from.
const IN_THE_BASE: &[&str] = &["libc6", "libgcc-s1", "zlib1g"];

/// The Debian package shipping `path`, asked of dpkg under the path and under its other name
/// across Debian 12's merged /usr (dpkg knows a library under one of the two).
fn package_of(path: &str) -> String {
    let other = match path.strip_prefix("/usr") {
        Some(p) => p.to_string(),
        None => format!("/usr{path}"),
    };
    for candidate in [path, &other] {
        let out = Command::new("dpkg-query").args(["-S", candidate]).output().expect("dpkg-query runs");
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            let package = text.split(':').next().unwrap_or_default().trim().to_string();
            return package;
        }
    }
    panic!("no Debian package ships {path} (dpkg-query -S)");
}

#[test]
fn the_image_installs_every_library_the_binary_links() {
    let out = Command::new("ldd").arg(env!("CARGO_BIN_EXE_gptransfer")).output().expect("ldd runs");
    assert!(out.status.success(), "ldd: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let run = all("RUN").join(" ");
    let mut seen = Vec::new();
    for line in text.lines() {
        // "libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x…)" or "/lib64/ld-linux… (0x…)"
        let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) else {
            assert!(line.contains("linux-vdso"), "ldd line without a path: {line}");
            continue;
        };
        let package = package_of(path);
        assert!(
            IN_THE_BASE.contains(&package.as_str()) || run.split_whitespace().any(|w| w == package),
            "the binary links {path} from package {package}, which packaging/Containerfile does not install: \
             add it to its apt-get install line"
        );
        seen.push(package);
    }
    assert!(seen.iter().any(|p| p == "libssl3"), "expected libssl3 among {seen:?}:\n{text}");
}

#[test]
fn gptransfer_config_names_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etc/gptransfer.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_gptransfer"))
        .args(["config", "check"])
        .env("GPTRANSFER_CONFIG", &path)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "the error names $GPTRANSFER_CONFIG's file: {stderr}");

    // --config still wins over the variable.
    let explicit = dir.path().join("explicit.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_gptransfer"))
        .args(["config", "check", "--config"])
        .arg(&explicit)
        .env("GPTRANSFER_CONFIG", &path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("explicit.toml") && !stderr.contains("etc/gptransfer.toml"), "{stderr}");
}
