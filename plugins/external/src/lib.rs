//! Loads external sink plugins: shared libraries built against `gptransfer-sdk`, named in
//! `[plugins] paths`. Each is checked (a gptransfer root module, the same SDK interface
//! version), never unloaded, and registered under its own name as a core [`Sink`] that calls
//! into the library from blocking tasks. Every failure names the library.
//!
//! abi_stable stays here and in the sdk crate: core and the other plugins never see it.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use abi_stable::std_types::{RSlice, RString};
use async_trait::async_trait;
use futures_util::StreamExt;
use gptransfer_core::config::{ConfigError, Mode, TableSpec};
use gptransfer_core::engine::Column;
use gptransfer_core::registry::{Factory, Registry};
use gptransfer_core::roles::{ByteStream, Sink, SinkWindow, WindowCtx};
use gptransfer_core::window::Window;
use gptransfer_core::RoleError;
use gptransfer_sdk::ffi::{
    lib_header_from_path, FfiColumn, FfiError, FfiOptions, FfiSinkBox, FfiWindowBox, FfiWindowInfo, LibraryError,
    SinkModuleRef, ROOT_MODULE_NAME,
};
use gptransfer_sdk::log::{HostLog, Level};
use gptransfer_sdk::INTERFACE_VERSION;

/// Loads every library of `paths` (relative ones from the config file's directory) into the
/// registry. The error names the config file and the library.
pub fn load_into(registry: &mut Registry, config_path: &Path, paths: &[PathBuf]) -> Result<(), ConfigError> {
    let base = config_path.parent().unwrap_or(Path::new("."));
    for path in paths {
        let path = if path.is_relative() { base.join(path) } else { path.clone() };
        let factory = load(&path, base).map_err(|message| ConfigError::file(config_path, message))?;
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

/// Loads one library; the error is a sentence naming it. Relative paths in the plugin's
/// options are its business: it resolves them against `config_dir`.
pub fn load(path: &Path, config_dir: &Path) -> Result<ExternalSinkFactory, String> {
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
    let mut modes = Vec::new();
    for m in (module.modes())() {
        match Mode::parse(m.as_str()) {
            Some(mode) => modes.push(mode),
            None => return Err(format!("plugin {shown} declares a mode gptransfer does not know: {:?}", m.as_str())),
        }
    }
    let counts = (module.counts())();
    (module.set_log())(HostLog { log: host_log });
    Ok(ExternalSinkFactory {
        module,
        name,
        describe,
        version,
        sdk: theirs,
        modes,
        counts,
        path: path.to_path_buf(),
        config_dir: config_dir.to_path_buf(),
    })
}

thread_local! {
    /// What the plugin is working on, for its log lines: set around every call into it.
    static CALLER: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// Runs `f` (a call into the plugin) with `label` naming the plugin's log lines.
fn calling<T>(label: &Arc<str>, f: impl FnOnce() -> T) -> T {
    let previous = CALLER.with(|c| c.replace(Some(label.clone())));
    let result = f();
    CALLER.with(|c| *c.borrow_mut() = previous);
    result
}

/// Where plugins' log lines arrive: in gptransfer's log, named by what the plugin works on.
extern "C" fn host_log(level: u8, message: RString) {
    let from = CALLER.with(|c| c.borrow().clone()).unwrap_or_else(|| Arc::from("sink plugin"));
    match Level::from_u8(level) {
        Level::Error => tracing::error!("{from}: {message}"),
        Level::Warn => tracing::warn!("{from}: {message}"),
        Level::Info => tracing::info!("{from}: {message}"),
        Level::Debug => tracing::debug!("{from}: {message}"),
    }
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
    /// The SDK version it was built against.
    sdk: String,
    modes: Vec<Mode>,
    counts: bool,
    path: PathBuf,
    config_dir: PathBuf,
}

impl ExternalSinkFactory {
    fn options(&self, options: &toml::Table) -> Result<FfiOptions, String> {
        let text = toml::to_string(options).map_err(|e| format!("options cannot be passed on as TOML: {e}"))?;
        Ok(FfiOptions { toml: text.into(), config_dir: self.config_dir.display().to_string().into() })
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
    fn sdk_version(&self) -> Option<String> {
        Some(self.sdk.clone())
    }
    fn origin(&self) -> String {
        self.path.display().to_string()
    }
    fn validate(&self, options: &toml::Table) -> Result<(), String> {
        let options = self.options(options)?;
        let label = Arc::from(self.label());
        calling(&label, || (self.module.validate())(&options)).into_result().map_err(|e| self.failed("options", e))
    }
    fn build(&self, options: &toml::Table) -> Result<Arc<dyn Sink>, String> {
        let options = self.options(options)?;
        let label: Arc<str> = Arc::from(self.label());
        let inner =
            calling(&label, || (self.module.new_sink())(&options)).into_result().map_err(|e| self.failed("init", e))?;
        Ok(Arc::new(ExternalSink {
            inner: Arc::new(inner),
            name: self.name,
            label,
            modes: self.modes.clone(),
            counts: self.counts,
        }))
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
    name: &'static str,
    label: Arc<str>,
    modes: Vec<Mode>,
    counts: bool,
}

/// The window as the plugin sees it. `window` is `None` for a `full` table's slot as a whole
/// (compare's count); a `full` load's window keeps one slot whatever its bounds.
fn window_info(table: &TableSpec, window: Option<Window>, described: &[Column]) -> FfiWindowInfo {
    let ts = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let id = window.map_or_else(|| "full".to_string(), |w| w.id());
    FfiWindowInfo {
        job: table.job.as_str().into(),
        slot: if table.mode == Mode::Full { "full".into() } else { id.as_str().into() },
        id: id.as_str().into(),
        start: window.map_or_else(|| ts(table.start), |w| ts(w.start)).into(),
        end: window.map(|w| ts(w.end)).unwrap_or_default().into(),
        table: table.source_table.to_string().into(),
        target_table: table.target_table.to_string().into(),
        columns: described
            .iter()
            .map(|c| FfiColumn {
                name: c.name.as_str().into(),
                type_name: c.type_name.as_str().into(),
                type_text: c.type_text.as_str().into(),
                nullable: !c.not_null,
            })
            .collect(),
        key: table.key.iter().map(|k| RString::from(k.as_str())).collect(),
        mode: table.mode.as_str().into(),
    }
}

impl ExternalSink {
    /// Names the plugin and what it works on, for its log lines.
    fn window_label(&self, table: &TableSpec, window: &str) -> Arc<str> {
        Arc::from(format!("{}, job {:?}, table {}, window {window}", self.label, table.job, table.display_name()))
    }
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
    fn loads_target(&self) -> bool {
        false
    }

    fn counts(&self) -> bool {
        self.counts
    }

    fn check_table(&self, table: &TableSpec, _columns: &[String]) -> Result<(), String> {
        if self.modes.contains(&table.mode) {
            return Ok(());
        }
        let modes: Vec<&str> = self.modes.iter().map(|m| m.as_str()).collect();
        Err(format!(
            "sink plugin {:?} loads {} mode only, and this table is in {} mode; choose one of those modes, or \
             another sink",
            self.name,
            if modes.is_empty() { "no".to_string() } else { modes.join(", ") },
            table.mode.as_str()
        ))
    }

    async fn count(&self, table: &TableSpec, window: Option<Window>, described: &[Column]) -> Result<u64, RoleError> {
        let info = window_info(table, window, described);
        let inner = self.inner.clone();
        let context = self.window_label(table, info.id.as_str());
        tokio::task::spawn_blocking(move || calling(&context, || inner.count(&info).into_result()))
            .await
            .map_err(|e| join_error(&self.label, e))?
            .map_err(|e| role_error(&self.label, "count", e))
    }

    async fn begin(&self, ctx: &WindowCtx) -> Result<Box<dyn SinkWindow>, RoleError> {
        let info = window_info(&ctx.table, Some(ctx.window), &ctx.described);
        let context = self.window_label(&ctx.table, &ctx.window.id());
        let inner = self.inner.clone();
        let call_context = context.clone();
        let window = tokio::task::spawn_blocking(move || calling(&call_context, || inner.begin(&info).into_result()))
            .await
            .map_err(|e| join_error(&self.label, e))?
            .map_err(|e| role_error(&self.label, "begin", e))?;
        Ok(Box::new(ExternalWindow { window: Some(window), label: self.label.clone(), context, prepared: None }))
    }
}

struct ExternalWindow {
    window: Option<FfiWindowBox>,
    /// The plugin, for errors (the engine names the table and window around them).
    label: Arc<str>,
    /// The plugin and the window, for the plugin's log lines.
    context: Arc<str>,
    /// The rows the plugin said it prepared.
    prepared: Option<u64>,
}

impl ExternalWindow {
    fn take(&mut self) -> Result<FfiWindowBox, RoleError> {
        self.window
            .take()
            .ok_or_else(|| RoleError::new(format!("{}: the window was lost after a failed call", self.label)))
    }

    /// Runs one call into the plugin on a blocking thread, keeping the window.
    async fn call<T: Send + 'static>(
        &mut self,
        step: &'static str,
        f: impl FnOnce(&mut FfiWindowBox) -> Result<T, FfiError> + Send + 'static,
    ) -> Result<T, RoleError> {
        let mut window = self.take()?;
        let context = self.context.clone();
        let (window, result) = tokio::task::spawn_blocking(move || {
            let r = calling(&context, || f(&mut window));
            (window, r)
        })
        .await
        .map_err(|e| join_error(&self.label, e))?;
        self.window = Some(window);
        result.map_err(|e| role_error(&self.label, step, e))
    }
}

#[async_trait]
impl SinkWindow for ExternalWindow {
    /// Writes every chunk, then has the plugin prepare the window: its count is what the engine
    /// checks against the rows read, before anything is committed.
    async fn load(&mut self, mut rows: ByteStream) -> Result<u64, RoleError> {
        while let Some(chunk) = rows.next().await {
            let chunk = chunk?;
            self.call("write", move |w| w.write(RSlice::from_slice(&chunk)).into_result()).await?;
        }
        let prepared = self.call("prepare", |w| w.prepare().into_result()).await?;
        self.prepared = Some(prepared);
        Ok(prepared)
    }

    fn transaction(&self) -> Option<&tokio_postgres::Client> {
        None
    }

    async fn commit(mut self: Box<Self>) -> Result<(), RoleError> {
        if self.prepared.is_none() {
            return Err(RoleError::new(format!("{}: commit before the window was prepared", self.label)));
        }
        // A failed commit is aborted on the plugin's side before the error comes back.
        self.call("commit", |w| w.commit().into_result()).await
    }

    async fn abort(mut self: Box<Self>) {
        if let Some(mut window) = self.window.take() {
            let context = self.context.clone();
            let result = tokio::task::spawn_blocking(move || calling(&context, || window.abort().into_result())).await;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("{}: abort: {}", self.label, e.message),
                Err(e) => tracing::warn!("{}: abort did not finish: {e}", self.label),
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
