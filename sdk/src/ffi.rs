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
use abi_stable::std_types::{RBox, RErr, ROk, RResult, RSlice, RStr, RString, RVec};
use abi_stable::{declare_root_module_statics, package_version_strings, sabi_trait, StableAbi};

pub use abi_stable::library::{lib_header_from_path, LibHeader, LibraryError, ROOT_MODULE_LOADER_NAME};

use crate::guard::catch;
use crate::{PluginError, Sink, SinkWindow, WindowInfo};

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

/// [`WindowInfo`] as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiWindowInfo {
    pub id: RString,
    pub start: RString,
    pub end: RString,
    pub table: RString,
    pub target_table: RString,
    pub columns: RVec<RString>,
    pub mode: RString,
}

impl From<&WindowInfo> for FfiWindowInfo {
    fn from(w: &WindowInfo) -> Self {
        FfiWindowInfo {
            id: w.id.as_str().into(),
            start: w.start.as_str().into(),
            end: w.end.as_str().into(),
            table: w.table.as_str().into(),
            target_table: w.target_table.as_str().into(),
            columns: w.columns.iter().map(|c| RString::from(c.as_str())).collect(),
            mode: w.mode.as_str().into(),
        }
    }
}

impl From<&FfiWindowInfo> for WindowInfo {
    fn from(w: &FfiWindowInfo) -> Self {
        WindowInfo {
            id: w.id.to_string(),
            start: w.start.to_string(),
            end: w.end.to_string(),
            table: w.table.to_string(),
            target_table: w.target_table.to_string(),
            columns: w.columns.iter().map(|c| c.to_string()).collect(),
            mode: w.mode.to_string(),
        }
    }
}

/// A sink made from its options.
#[sabi_trait]
pub trait FfiSink: Send + Sync {
    #[sabi(last_prefix_field)]
    fn begin(&self, window: &FfiWindowInfo) -> RResult<FfiWindowBox, FfiError>;
}

/// A sink behind the boundary.
pub type FfiSinkBox = FfiSink_TO<'static, RBox<()>>;

/// One window in progress.
#[sabi_trait]
pub trait FfiWindow: Send {
    fn write(&mut self, chunk: RSlice<'_, u8>) -> RResult<(), FfiError>;
    fn commit(&mut self) -> RResult<u64, FfiError>;
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
    pub validate: extern "C" fn(config_toml: RStr<'_>) -> RResult<(), FfiError>,
    #[sabi(last_prefix_field)]
    pub new_sink: extern "C" fn(config_toml: RStr<'_>) -> RResult<FfiSinkBox, FfiError>,
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

extern "C" fn validate<P: PluginMeta>(config_toml: RStr<'_>) -> RResult<(), FfiError> {
    catch("validate", || <P::Sink as Sink>::validate(config_toml.as_str())).map_err(FfiError::from).into()
}

extern "C" fn new_sink<P: PluginMeta>(config_toml: RStr<'_>) -> RResult<FfiSinkBox, FfiError> {
    match catch("init", || <P::Sink as Sink>::new(config_toml.as_str())) {
        Ok(sink) => ROk(FfiSink_TO::from_value(SinkAdapter(sink), TD_Opaque)),
        Err(e) => RErr(e.into()),
    }
}

struct SinkAdapter<S>(S);

impl<S: Sink> FfiSink for SinkAdapter<S> {
    fn begin(&self, window: &FfiWindowInfo) -> RResult<FfiWindowBox, FfiError> {
        let info = WindowInfo::from(window);
        match catch("begin", || self.0.begin(&info)) {
            Ok(w) => ROk(FfiWindow_TO::from_value(WindowAdapter { window: Some(w), failed: None }, TD_Opaque)),
            Err(e) => RErr(e.into()),
        }
    }
}

/// Holds the plugin's window; refuses writes and commits after a failure, aborts when dropped.
struct WindowAdapter<W: SinkWindow> {
    window: Option<W>,
    failed: Option<String>,
}

impl<W: SinkWindow> FfiWindow for WindowAdapter<W> {
    fn write(&mut self, chunk: RSlice<'_, u8>) -> RResult<(), FfiError> {
        if let Some(f) = &self.failed {
            return RErr(PluginError::fatal(format!("the window already failed: {f}")).into());
        }
        let Some(w) = self.window.as_mut() else {
            return RErr(PluginError::fatal("the window is already finished").into());
        };
        match catch("write", || w.write(chunk.as_slice())) {
            Ok(()) => ROk(()),
            Err(e) => {
                self.failed = Some(e.message.clone());
                RErr(e.into())
            }
        }
    }

    fn commit(&mut self) -> RResult<u64, FfiError> {
        if let Some(f) = self.failed.clone() {
            let _ = self.abort();
            return RErr(PluginError::fatal(format!("cannot commit: the window already failed: {f}")).into());
        }
        let Some(w) = self.window.take() else {
            return RErr(PluginError::fatal("the window is already finished").into());
        };
        catch("commit", || w.commit()).map_err(FfiError::from).into()
    }

    fn abort(&mut self) -> RResult<(), FfiError> {
        match self.window.take() {
            Some(w) => catch("abort", || {
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
    #[test]
    fn the_exported_static_has_the_name_abi_stable_looks_up() {
        assert_eq!(super::ROOT_MODULE_LOADER_NAME, "_1as_0lib_1header_0root_bmodule_bloader");
    }
}
