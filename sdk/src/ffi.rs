//! The ABI-stable layer between the host and a plugin library: a root module with the SDK
//! version, and the sink and window as `#[sabi_trait]` objects. Host loaders use it; plugin
//! authors implement [`crate::Sink`] and never need it.
// abi_stable's derives generate unsafe impls and undocumented items; this module is the one
// place the SDK lets them in.
#![allow(missing_docs, unsafe_code, non_local_definitions)]

use abi_stable::library::{CheckTypeLayout, RootModule, RootModuleResult};
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RBox, RErr, ROk, RResult, RSlice, RString, RVec};
use abi_stable::{declare_root_module_statics, package_version_strings, sabi_trait, StableAbi};

pub use abi_stable::library::{lib_header_from_path, LibHeader, LibraryError, ROOT_MODULE_LOADER_NAME};

use crate::guard::catch;
use crate::{Column, Mode, Options, PluginError, Sink, SinkWindow, TypeKind, WindowInfo};

/// The name every gptransfer sink library's root module has.
pub const ROOT_MODULE_NAME: &str = "gptransfer_sink";

/// A plugin error as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiError {
    pub message: RString,
    pub retriable: bool,
}

impl From<PluginError> for FfiError {
    fn from(e: PluginError) -> Self {
        FfiError { message: e.message.into(), retriable: e.retriable }
    }
}

impl From<FfiError> for PluginError {
    fn from(e: FfiError) -> Self {
        PluginError { message: e.message.into(), retriable: e.retriable }
    }
}

/// [`Options`] as they cross the boundary.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiOptions {
    pub toml: RString,
    pub config_dir: RString,
}

impl From<&FfiOptions> for Options {
    fn from(o: &FfiOptions) -> Self {
        Options::new(o.toml.as_str(), o.config_dir.as_str())
    }
}

/// [`Column`] as it crosses the boundary (the kind is derived again from the type name).
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiColumn {
    pub name: RString,
    pub type_name: RString,
    pub type_text: RString,
    pub nullable: bool,
}

/// [`WindowInfo`] as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiWindowInfo {
    pub job: RString,
    pub id: RString,
    pub slot: RString,
    pub start: RString,
    pub end: RString,
    pub table: RString,
    pub target_table: RString,
    pub columns: RVec<FfiColumn>,
    pub key: RVec<RString>,
    pub mode: RString,
}

impl From<&WindowInfo> for FfiWindowInfo {
    fn from(w: &WindowInfo) -> Self {
        FfiWindowInfo {
            job: w.job.as_str().into(),
            id: w.id.as_str().into(),
            slot: w.slot.as_str().into(),
            start: w.start.as_str().into(),
            end: w.end.as_str().into(),
            table: w.table.as_str().into(),
            target_table: w.target_table.as_str().into(),
            columns: w
                .columns
                .iter()
                .map(|c| FfiColumn {
                    name: c.name.as_str().into(),
                    type_name: c.type_name.as_str().into(),
                    type_text: c.type_text.as_str().into(),
                    nullable: c.nullable,
                })
                .collect(),
            key: w.key.iter().map(|k| RString::from(k.as_str())).collect(),
            mode: w.mode.as_str().into(),
        }
    }
}

impl TryFrom<&FfiWindowInfo> for WindowInfo {
    type Error = PluginError;

    fn try_from(w: &FfiWindowInfo) -> Result<Self, PluginError> {
        let mode = Mode::parse(w.mode.as_str())
            .ok_or_else(|| PluginError::fatal(format!("the host asked for an unknown mode {:?}", w.mode.as_str())))?;
        Ok(WindowInfo {
            job: w.job.to_string(),
            id: w.id.to_string(),
            slot: w.slot.to_string(),
            start: w.start.to_string(),
            end: w.end.to_string(),
            table: w.table.to_string(),
            target_table: w.target_table.to_string(),
            columns: w
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.to_string(),
                    type_name: c.type_name.to_string(),
                    type_text: c.type_text.to_string(),
                    kind: TypeKind::of(c.type_name.as_str()),
                    nullable: c.nullable,
                })
                .collect(),
            key: w.key.iter().map(|k| k.to_string()).collect(),
            mode,
        })
    }
}

/// A sink made from its options.
#[sabi_trait]
pub trait FfiSink: Send + Sync {
    fn begin(&self, window: &FfiWindowInfo) -> RResult<FfiWindowBox, FfiError>;
    #[sabi(last_prefix_field)]
    fn count(&self, window: &FfiWindowInfo) -> RResult<u64, FfiError>;
}

/// A sink behind the boundary.
pub type FfiSinkBox = FfiSink_TO<'static, RBox<()>>;

/// One window in progress. After a failed call the window is aborted on the plugin's side
/// already; the host's `abort` is then a no-op.
#[sabi_trait]
pub trait FfiWindow: Send {
    fn write(&mut self, chunk: RSlice<'_, u8>) -> RResult<(), FfiError>;
    fn prepare(&mut self) -> RResult<u64, FfiError>;
    fn commit(&mut self) -> RResult<(), FfiError>;
    #[sabi(last_prefix_field)]
    fn abort(&mut self) -> RResult<(), FfiError>;
}

/// A window behind the boundary.
pub type FfiWindowBox = FfiWindow_TO<'static, RBox<()>>;

/// The root module every plugin library exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = SinkModuleRef)))]
#[sabi(missing_field(panic))]
pub struct SinkModule {
    pub name: extern "C" fn() -> RString,
    pub version: extern "C" fn() -> RString,
    pub description: extern "C" fn() -> RString,
    /// The modes the sink loads, by name.
    pub modes: extern "C" fn() -> RVec<RString>,
    /// Whether the sink can count what a window's slot holds.
    pub counts: extern "C" fn() -> bool,
    /// Where the plugin's log lines go.
    pub set_log: extern "C" fn(log: crate::log::HostLog),
    pub validate: extern "C" fn(options: &FfiOptions) -> RResult<(), FfiError>,
    #[sabi(last_prefix_field)]
    pub new_sink: extern "C" fn(options: &FfiOptions) -> RResult<FfiSinkBox, FfiError>,
}

impl RootModule for SinkModuleRef {
    declare_root_module_statics! {SinkModuleRef}
    const BASE_NAME: &'static str = ROOT_MODULE_NAME;
    const NAME: &'static str = ROOT_MODULE_NAME;
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// What [`crate::export_sink_plugin!`] knows about the plugin crate.
pub trait PluginMeta: 'static {
    /// The sink type.
    type Sink: Sink;
    /// The plugin crate's own version.
    const VERSION: &'static str;
}

/// The static a plugin library exports (through [`crate::export_sink_plugin!`]).
pub const fn lib_header<P: PluginMeta>() -> LibHeader {
    // SAFETY: the constructor returns a `SinkModuleRef` erased by abi_stable's own loader
    // function, which is what `from_constructor` requires.
    #[allow(unsafe_code)]
    unsafe {
        LibHeader::from_constructor::<SinkModuleRef>(construct::<P>, CheckTypeLayout::Yes)
    }
}

extern "C" fn construct<P: PluginMeta>() -> RootModuleResult {
    abi_stable::library::__call_root_module_loader(module::<P>)
}

/// The root module of plugin `P`, without going through a library (for in-process tests).
pub fn module<P: PluginMeta>() -> SinkModuleRef {
    SinkModule {
        name: name::<P>,
        version: version::<P>,
        description: description::<P>,
        modes: modes::<P>,
        counts: counts::<P>,
        set_log,
        validate: validate::<P>,
        new_sink: new_sink::<P>,
    }
    .leak_into_prefix()
}

extern "C" fn name<P: PluginMeta>() -> RString {
    <P::Sink as Sink>::NAME.into()
}

extern "C" fn version<P: PluginMeta>() -> RString {
    P::VERSION.into()
}

extern "C" fn description<P: PluginMeta>() -> RString {
    <P::Sink as Sink>::DESCRIPTION.into()
}

extern "C" fn modes<P: PluginMeta>() -> RVec<RString> {
    <P::Sink as Sink>::MODES.iter().map(|m| RString::from(m.as_str())).collect()
}

extern "C" fn counts<P: PluginMeta>() -> bool {
    <P::Sink as Sink>::COUNTS
}

extern "C" fn set_log(log: crate::log::HostLog) {
    crate::log::set_host(log);
}

extern "C" fn validate<P: PluginMeta>(options: &FfiOptions) -> RResult<(), FfiError> {
    catch(|| <P::Sink as Sink>::validate(&Options::from(options))).map_err(FfiError::from).into()
}

extern "C" fn new_sink<P: PluginMeta>(options: &FfiOptions) -> RResult<FfiSinkBox, FfiError> {
    match catch(|| <P::Sink as Sink>::new(&Options::from(options))) {
        Ok(sink) => ROk(FfiSink_TO::from_value(SinkAdapter(sink), TD_Opaque)),
        Err(e) => RErr(e.into()),
    }
}

struct SinkAdapter<S>(S);

impl<S: Sink> FfiSink for SinkAdapter<S> {
    fn begin(&self, window: &FfiWindowInfo) -> RResult<FfiWindowBox, FfiError> {
        match catch(|| self.0.begin(&WindowInfo::try_from(window)?)) {
            Ok(w) => ROk(FfiWindow_TO::from_value(WindowAdapter { window: Some(w), failed: None }, TD_Opaque)),
            Err(e) => RErr(e.into()),
        }
    }

    fn count(&self, window: &FfiWindowInfo) -> RResult<u64, FfiError> {
        catch(|| self.0.count(&WindowInfo::try_from(window)?)).map_err(FfiError::from).into()
    }
}

/// Holds the plugin's window: after a failed call it aborts the window at once (so cleanup
/// never depends on the host), refuses further calls, and aborts it when dropped unfinished.
struct WindowAdapter<W: SinkWindow> {
    window: Option<W>,
    failed: Option<String>,
}

impl<W: SinkWindow> WindowAdapter<W> {
    fn call<T>(&mut self, step: &str, f: impl FnOnce(&mut W) -> Result<T, PluginError>) -> RResult<T, FfiError> {
        if let Some(f) = &self.failed {
            return RErr(PluginError::fatal(format!("cannot {step}: the window already failed: {f}")).into());
        }
        let Some(w) = self.window.as_mut() else {
            return RErr(PluginError::fatal(format!("cannot {step}: the window is already finished")).into());
        };
        match catch(|| f(w)) {
            Ok(v) => ROk(v),
            Err(e) => {
                self.failed = Some(e.message.clone());
                let _ = self.abort();
                RErr(e.into())
            }
        }
    }
}

impl<W: SinkWindow> FfiWindow for WindowAdapter<W> {
    fn write(&mut self, chunk: RSlice<'_, u8>) -> RResult<(), FfiError> {
        self.call("write", |w| w.write(chunk.as_slice()))
    }

    fn prepare(&mut self) -> RResult<u64, FfiError> {
        self.call("prepare", |w| w.prepare())
    }

    fn commit(&mut self) -> RResult<(), FfiError> {
        let result = self.call("commit", |w| w.commit());
        if result.is_ok() {
            // Committed: nothing left to abort.
            self.window = None;
        }
        result
    }

    fn abort(&mut self) -> RResult<(), FfiError> {
        match self.window.take() {
            Some(mut w) => catch(|| {
                w.abort();
                Ok(())
            })
            .map_err(FfiError::from)
            .into(),
            None => ROk(()),
        }
    }
}

impl<W: SinkWindow> Drop for WindowAdapter<W> {
    fn drop(&mut self) {
        let _ = self.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use abi_stable::std_types::RSlice;

    use super::{module, FfiOptions, FfiWindowInfo, PluginMeta};
    use crate::{Options, PluginError, Sink, SinkWindow, WindowInfo};

    static ABORTS: AtomicUsize = AtomicUsize::new(0);

    /// Fails its commit the way its options say: with an error, or by panicking.
    struct Failing {
        panics: bool,
    }
    struct FailingWindow {
        panics: bool,
    }
    impl Sink for Failing {
        const NAME: &'static str = "failing";
        const DESCRIPTION: &'static str = "test";
        type Window = FailingWindow;
        fn new(options: &Options) -> Result<Self, PluginError> {
            Ok(Failing { panics: options.toml().contains("panics") })
        }
        fn begin(&self, _: &WindowInfo) -> Result<FailingWindow, PluginError> {
            Ok(FailingWindow { panics: self.panics })
        }
    }
    impl SinkWindow for FailingWindow {
        fn write(&mut self, _: &[u8]) -> Result<(), PluginError> {
            Ok(())
        }
        fn prepare(&mut self) -> Result<u64, PluginError> {
            Ok(1)
        }
        fn commit(&mut self) -> Result<(), PluginError> {
            if self.panics {
                panic!("commit blew up");
            }
            Err(PluginError::retriable("the disk is full"))
        }
        fn abort(&mut self) {
            ABORTS.fetch_add(1, Ordering::SeqCst);
        }
    }
    struct Meta;
    impl PluginMeta for Meta {
        type Sink = Failing;
        const VERSION: &'static str = "1.0.0";
    }

    fn info() -> FfiWindowInfo {
        FfiWindowInfo {
            job: "j".into(),
            id: "w".into(),
            slot: "w".into(),
            start: "2024-01-01 00:00:00".into(),
            end: "2024-01-01 01:00:00".into(),
            table: "s.t".into(),
            target_table: "s.t".into(),
            columns: Default::default(),
            key: Default::default(),
            mode: "replace".into(),
        }
    }

    #[test]
    fn the_exported_static_has_the_name_abi_stable_looks_up() {
        assert_eq!(super::ROOT_MODULE_LOADER_NAME, "_1as_0lib_1header_0root_bmodule_bloader");
    }

    #[test]
    fn a_failed_or_panicking_commit_aborts_the_window_once_and_says_what_happened() {
        let m = module::<Meta>();
        for (options, message, retriable) in
            [("", "the disk is full", true), ("panics = true", "panicked: commit blew up at ", false)]
        {
            let before = ABORTS.load(Ordering::SeqCst);
            let opts = FfiOptions { toml: options.into(), config_dir: "/".into() };
            let sink = (m.new_sink())(&opts).into_result().unwrap_or_else(|e| panic!("{}", e.message));
            let mut w = sink.begin(&info()).into_result().unwrap_or_else(|e| panic!("{}", e.message));
            assert!(w.write(RSlice::from_slice(b"x\n")).is_ok());
            assert_eq!(w.prepare().into_result().ok(), Some(1));
            let e = w.commit().into_result().unwrap_err();
            assert!(e.message.starts_with(message), "{}", e.message);
            assert_eq!(e.retriable, retriable);
            assert_eq!(ABORTS.load(Ordering::SeqCst), before + 1, "aborted right after the failed commit");
            assert!(w.abort().is_ok());
            drop(w);
            assert_eq!(ABORTS.load(Ordering::SeqCst), before + 1, "and never again");
            let again = w_commit_after_failure(&sink);
            assert!(again.contains("already failed"), "{again}");
        }
    }

    /// A second commit after a failed one is refused, naming the first failure.
    fn w_commit_after_failure(sink: &super::FfiSinkBox) -> String {
        let mut w = match sink.begin(&info()).into_result() {
            Ok(w) => w,
            Err(e) => return e.message.to_string(),
        };
        let _ = w.prepare();
        let _ = w.commit();
        w.commit().into_result().err().map(|e| e.message.to_string()).unwrap_or_default()
    }
}
