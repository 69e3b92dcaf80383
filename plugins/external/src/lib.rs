//! Loads external sink plugins: shared libraries built against `gptransfer-sdk`, named in
//! `[plugins] paths`. Each is checked (a gptransfer root module, the same SDK interface
//! version), never unloaded, and registered under its own name as a core [`Sink`] that calls
//! into the library from blocking tasks. Every failure names the library.
//!
//! abi_stable stays here and in the sdk crate: core and the other plugins never see it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use abi_stable::std_types::{RSlice, RStr};
use async_trait::async_trait;
use futures_util::StreamExt;
use gptransfer_core::config::ConfigError;
use gptransfer_core::registry::{Factory, Registry};
use gptransfer_core::roles::{ByteStream, Sink, SinkWindow, WindowCtx};
use gptransfer_core::RoleError;
use gptransfer_sdk::ffi::{
    lib_header_from_path, FfiError, FfiSinkBox, FfiWindowBox, FfiWindowInfo, LibraryError, SinkModuleRef,
    ROOT_MODULE_NAME,
};
use gptransfer_sdk::INTERFACE_VERSION;

/// Loads every library of `paths` (relative ones from the config file's directory) into the
/// registry. The error names the config file and the library.
pub fn load_into(registry: &mut Registry, config_path: &Path, paths: &[PathBuf]) -> Result<(), ConfigError> {
    let base = config_path.parent().unwrap_or(Path::new("."));
    for path in paths {
        let path = if path.is_relative() { base.join(path) } else { path.clone() };
        let factory = load(&path).map_err(|message| ConfigError::file(config_path, message))?;
        if let Some(origin) = registry.sink_origin(factory.name) {
            return Err(ConfigError::file(
                config_path,
                format!(
                    "plugin {} is named {:?}, like the sink from {origin}; sink names must be unique",
                    path.display(),
                    factory.name
                ),
            ));
        }
        tracing::debug!(plugin = factory.name, path = %path.display(), "loaded external sink");
        registry.add_sink(factory);
    }
    Ok(())
}

/// Loads one library; the error is a sentence naming it.
pub fn load(path: &Path) -> Result<ExternalSinkFactory, String> {
    let shown = path.display();
    if !path.exists() {
        return Err(format!(
            "plugin library {shown} does not exist\nhint: build the plugin, or fix the path in [plugins] paths"
        ));
    }
    let header = lib_header_from_path(path).map_err(|e| match e {
        LibraryError::GetSymbolError { .. } => format!(
            "{shown} is not a gptransfer plugin: it exports no gptransfer-sdk root module\n\
             hint: a plugin calls gptransfer_sdk::export_sink_plugin!(YourSink)"
        ),
        LibraryError::OpenError { .. } => format!("cannot load plugin library {shown}: {}", first_line(&e.to_string())),
        other => format!("cannot load plugin library {shown}: {}", first_line(&other.to_string())),
    })?;
    let consts = header.root_mod_consts();
    if consts.name().as_str() != ROOT_MODULE_NAME {
        return Err(format!(
            "{shown} is not a gptransfer plugin: its abi_stable root module is {:?}, not {ROOT_MODULE_NAME:?}",
            consts.name().as_str()
        ));
    }
    let theirs = consts.version_strings();
    let theirs = theirs.parsed().map(|v| format!("{}.{}.{}", v.major, v.minor, v.patch)).map_err(|e| {
        format!("plugin {shown} declares an SDK version that cannot be read: {}", first_line(&e.to_string()))
    })?;
    if !compatible(&theirs, INTERFACE_VERSION) {
        return Err(format!(
            "plugin {shown} was built against gptransfer-sdk {theirs}, this gptransfer speaks {INTERFACE_VERSION}\n\
             hint: rebuild the plugin against gptransfer-sdk {INTERFACE_VERSION}"
        ));
    }
    let module = header
        .init_root_module::<SinkModuleRef>()
        .map_err(|e| format!("cannot load plugin {shown}: {}", first_line(&e.to_string())))?;
    let name: &'static str = String::leak((module.name())().into_string());
    let describe: &'static str = String::leak((module.description())().into_string());
    let version = (module.version())().into_string();
    Ok(ExternalSinkFactory { module, name, describe, version, path: path.to_path_buf() })
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text).trim()
}

/// Same major version; below 1.0, same minor too (semver's rule for 0.x).
fn compatible(theirs: &str, ours: &str) -> bool {
    let parts = |v: &str| v.split('.').map(|p| p.parse::<u64>().unwrap_or(u64::MAX)).collect::<Vec<_>>();
    let (a, b) = (parts(theirs), parts(ours));
    a.first() == b.first() && (b.first() != Some(&0) || a.get(1) == b.get(1))
}

/// A loaded plugin library, as the registry sees it.
pub struct ExternalSinkFactory {
    module: SinkModuleRef,
    name: &'static str,
    describe: &'static str,
    version: String,
    path: PathBuf,
}

impl ExternalSinkFactory {
    fn options_text(options: &toml::Table) -> Result<String, String> {
        toml::to_string(options).map_err(|e| format!("options cannot be passed on as TOML: {e}"))
    }

    fn failed(&self, entry: &str, e: FfiError) -> String {
        format!("plugin {:?} ({}): {entry}: {}", self.name, self.path.display(), e.message)
    }
}

impl Factory<dyn Sink> for ExternalSinkFactory {
    fn name(&self) -> &'static str {
        self.name
    }
    fn describe(&self) -> &'static str {
        self.describe
    }
    fn version(&self) -> String {
        self.version.clone()
    }
    fn origin(&self) -> String {
        self.path.display().to_string()
    }
    fn validate(&self, options: &toml::Table) -> Result<(), String> {
        let text = Self::options_text(options)?;
        (self.module.validate())(RStr::from_str(&text)).into_result().map_err(|e| self.failed("options", e))
    }
    fn build(&self, options: &toml::Table) -> Result<Arc<dyn Sink>, String> {
        let text = Self::options_text(options)?;
        let inner =
            (self.module.new_sink())(RStr::from_str(&text)).into_result().map_err(|e| self.failed("init", e))?;
        Ok(Arc::new(ExternalSink { inner: Arc::new(inner), label: Arc::from(self.label()) }))
    }
}

impl ExternalSinkFactory {
    fn label(&self) -> String {
        format!("sink plugin {:?} ({})", self.name, self.path.display())
    }
}

/// An external sink adapted to core's [`Sink`].
struct ExternalSink {
    inner: Arc<FfiSinkBox>,
    label: Arc<str>,
}

fn role_error(label: &str, entry: &str, e: FfiError) -> RoleError {
    let message = format!("{label}: {entry}: {}", e.message);
    if e.retriable {
        RoleError::retriable(message)
    } else {
        RoleError::new(message)
    }
}

fn join_error(label: &str, e: tokio::task::JoinError) -> RoleError {
    RoleError::new(format!("{label}: the call into the plugin did not finish: {e}"))
}

#[async_trait]
impl Sink for ExternalSink {
    async fn begin(&self, ctx: &WindowCtx) -> Result<Box<dyn SinkWindow>, RoleError> {
        let ts = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
        let info = FfiWindowInfo {
            id: ctx.window.id().into(),
            start: ts(ctx.window.start).into(),
            end: ts(ctx.window.end).into(),
            table: ctx.table.source_table.to_string().into(),
            target_table: ctx.table.target_table.to_string().into(),
            columns: ctx.columns.iter().map(|c| c.as_str().into()).collect(),
            mode: ctx.table.mode.as_str().into(),
        };
        let inner = self.inner.clone();
        let window = tokio::task::spawn_blocking(move || inner.begin(&info).into_result())
            .await
            .map_err(|e| join_error(&self.label, e))?
            .map_err(|e| role_error(&self.label, "begin", e))?;
        Ok(Box::new(ExternalWindow { window: Some(window), rows: 0, label: self.label.clone() }))
    }
}

struct ExternalWindow {
    window: Option<FfiWindowBox>,
    rows: u64,
    label: Arc<str>,
}

impl ExternalWindow {
    fn take(&mut self) -> Result<FfiWindowBox, RoleError> {
        self.window
            .take()
            .ok_or_else(|| RoleError::new(format!("{}: the window was lost after a failed call", self.label)))
    }
}

#[async_trait]
impl SinkWindow for ExternalWindow {
    async fn load(&mut self, mut rows: ByteStream) -> Result<u64, RoleError> {
        while let Some(chunk) = rows.next().await {
            let chunk = chunk?;
            let mut window = self.take()?;
            let (window, result) = tokio::task::spawn_blocking(move || {
                let r = window.write(RSlice::from_slice(&chunk)).into_result().map(|()| chunk);
                (window, r)
            })
            .await
            .map_err(|e| join_error(&self.label, e))?;
            self.window = Some(window);
            let chunk = result.map_err(|e| role_error(&self.label, "write", e))?;
            // COPY text format: one raw newline per row.
            self.rows += memchr::memchr_iter(b'\n', &chunk).count() as u64;
        }
        Ok(self.rows)
    }

    fn transaction(&self) -> Option<&tokio_postgres::Client> {
        None
    }

    async fn commit(mut self: Box<Self>) -> Result<(), RoleError> {
        let mut window = self.take()?;
        let label = self.label.clone();
        let committed = tokio::task::spawn_blocking(move || window.commit().into_result())
            .await
            .map_err(|e| join_error(&label, e))?
            .map_err(|e| role_error(&label, "commit", e))?;
        if committed != self.rows {
            return Err(RoleError::new(format!(
                "{label}: commit reported {committed} rows but {} were written to it",
                self.rows
            )));
        }
        Ok(())
    }

    async fn abort(mut self: Box<Self>) {
        if let Some(mut window) = self.window.take() {
            let label = self.label.clone();
            let result = tokio::task::spawn_blocking(move || window.abort().into_result()).await;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("{label}: abort: {}", e.message),
                Err(e) => tracing::warn!("{label}: abort did not finish: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::compatible;

    #[test]
    fn versions_follow_semver() {
        assert!(compatible("0.1.0", "0.1.3"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(!compatible("9.4.0", "0.1.0"));
        assert!(compatible("1.2.0", "1.0.0"));
        assert!(!compatible("2.0.0", "1.0.0"));
    }
}
