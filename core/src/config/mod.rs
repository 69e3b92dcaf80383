//! Configuration: the TOML model, its loading with line/column errors, and the resolved
//! per-table specs the engine runs on.

mod duration;
mod load;
mod model;
mod plugin_spec;
mod preset;
mod reader;
mod resolve;
mod timestamp;

pub use duration::ConfigDuration;
pub use load::{find_config_path, ConfigError, Location};
pub use model::{
    AlarmConfig, ClusterConfig, ConfigFile, FlavourName, JobConfig, Mode, PluginsConfig, SslMode, StateConfig,
    TableConfig,
};
pub use plugin_spec::PluginSpec;
pub use preset::{PresetConfig, PRESETS};
pub use reader::{failpoint, ExternalCursor, ExternalCursors, TableProgress};
pub use resolve::{
    AlarmSpec, Config, JobDefaults, JobSpec, StateSpec, TableSpec, DEFAULT_RETRIES, DEFAULT_RETRY_DELAY,
    MAX_RETRY_DELAY,
};
pub use timestamp::ConfigTimestamp;
