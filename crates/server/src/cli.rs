//! The command line: `sightline serve` and `sightline config check FILE`.
//!
//! Every `serve` flag also reads a `SIGHTLINE_*` environment variable (clap's `env`);
//! a flag or variable only overrides the config file when it is actually given.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError, LogFormat};

/// Sightline: one binary that is a whole observability backend (Prometheus-compatible
/// metrics first: remote_write, OTLP, the Prometheus HTTP API).
///
/// Listeners default to loopback (127.0.0.1) so a fresh install is not reachable from
/// the network; pass `--listen 0.0.0.0:9700` (and the OTLP equivalents) to expose it.
#[derive(Debug, Parser)]
#[command(name = "sightline", version, about, long_about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the server: HTTP API and UI on 127.0.0.1:9700, OTLP gRPC on 127.0.0.1:4317,
    /// OTLP HTTP on 127.0.0.1:4318, data in ./data. Works with no config file at all.
    Serve(ServeArgs),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate a YAML config file; prints each problem with its line number and exits
    /// 1 when there is one, 0 when the file is valid.
    Check {
        /// The YAML file to check.
        file: PathBuf,
    },
    /// Print the default configuration (the same as config/sightline.example.yaml
    /// without comments).
    Defaults,
}

/// Flags of `sightline serve`. Each overrides the config file when given.
#[derive(Debug, Default, Clone, Args)]
pub(crate) struct ServeArgs {
    /// YAML config file (see config/sightline.example.yaml). Optional.
    #[arg(long, env = "SIGHTLINE_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Directory for all data [default: ./data].
    #[arg(long, env = "SIGHTLINE_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Address of the HTTP API and UI [default: 127.0.0.1:9700].
    #[arg(long, env = "SIGHTLINE_LISTEN", value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,
    /// Address of the OTLP/gRPC receiver [default: 127.0.0.1:4317].
    #[arg(long, env = "SIGHTLINE_OTLP_GRPC_LISTEN", value_name = "ADDR")]
    pub(crate) otlp_grpc_listen: Option<SocketAddr>,
    /// Address of the OTLP/HTTP receiver [default: 127.0.0.1:4318].
    #[arg(long, env = "SIGHTLINE_OTLP_HTTP_LISTEN", value_name = "ADDR")]
    pub(crate) otlp_http_listen: Option<SocketAddr>,
    /// Log format [default: text].
    #[arg(long, env = "SIGHTLINE_LOG_FORMAT", value_enum, value_name = "FORMAT")]
    pub(crate) log_format: Option<LogFormat>,
    /// Log level or tracing directive, e.g. `debug` or `info,sightline_tsdb=debug`
    /// [default: info].
    #[arg(long, env = "SIGHTLINE_LOG_LEVEL", value_name = "LEVEL")]
    pub(crate) log_level: Option<String>,
    /// Serve the admin API (`POST /api/sightline/v1/admin/flush`), which has no
    /// authentication [default: off].
    #[arg(long, env = "SIGHTLINE_ENABLE_ADMIN_API")]
    pub(crate) enable_admin_api: bool,
}

impl ServeArgs {
    /// The effective configuration: defaults, then the file, then env/flags.
    pub(crate) fn resolve_config(&self) -> Result<Config, ConfigError> {
        let base = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        let config = self.apply(base);
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: "flags/environment".to_string(),
                problems,
            });
        }
        Ok(config)
    }

    /// Overrides the fields of `config` for which a flag or variable was given.
    pub(crate) fn apply(&self, mut config: Config) -> Config {
        if let Some(data_dir) = &self.data_dir {
            config.data_dir = data_dir.clone();
        }
        if let Some(listen) = self.listen {
            config.server.listen = listen;
        }
        if let Some(listen) = self.otlp_grpc_listen {
            config.server.otlp_grpc_listen = listen;
        }
        if let Some(listen) = self.otlp_http_listen {
            config.server.otlp_http_listen = listen;
        }
        if let Some(format) = self.log_format {
            config.server.log_format = format;
        }
        if let Some(level) = &self.log_level {
            config.server.log_level = level.clone();
        }
        if self.enable_admin_api {
            config.server.enable_admin_api = true;
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    fn serve_args(args: &[&str]) -> ServeArgs {
        let mut argv = vec!["sightline", "serve"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Serve(args) => args,
            other => panic!("expected serve, got {other:?}"),
        }
    }

    #[test]
    fn no_flags_means_file_or_defaults() {
        // Only meaningful when no SIGHTLINE_* variable is set in the test environment.
        if std::env::vars().any(|(k, _)| k.starts_with("SIGHTLINE_")) {
            return;
        }
        let args = serve_args(&[]);
        assert_eq!(args.apply(Config::default()), Config::default());
        let mut from_file = Config {
            data_dir: "/from/file".into(),
            ..Config::default()
        };
        from_file.server.listen = "0.0.0.0:1".parse().unwrap();
        assert_eq!(args.apply(from_file.clone()), from_file);
    }

    #[test]
    fn flags_override_file() {
        let args = serve_args(&[
            "--data-dir",
            "/d",
            "--listen",
            "127.0.0.1:1",
            "--otlp-grpc-listen",
            "127.0.0.1:2",
            "--otlp-http-listen",
            "127.0.0.1:3",
            "--log-format",
            "json",
            "--log-level",
            "debug",
        ]);
        let mut from_file = Config {
            data_dir: "/from/file".into(),
            ..Config::default()
        };
        from_file.server.listen = "0.0.0.0:9".parse().unwrap();
        from_file.limits.max_label_names_per_series = 7;
        let config = args.apply(from_file);
        assert_eq!(config.data_dir, PathBuf::from("/d"));
        assert_eq!(config.server.listen, "127.0.0.1:1".parse().unwrap());
        assert_eq!(
            config.server.otlp_grpc_listen,
            "127.0.0.1:2".parse().unwrap()
        );
        assert_eq!(
            config.server.otlp_http_listen,
            "127.0.0.1:3".parse().unwrap()
        );
        assert_eq!(config.server.log_format, LogFormat::Json);
        assert_eq!(config.server.log_level, "debug");
        // Options without a flag keep the file's value.
        assert_eq!(config.limits.max_label_names_per_series, 7);
    }

    #[test]
    fn file_overrides_defaults_and_flags_override_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.yaml");
        std::fs::write(
            &path,
            "data_dir: /from/file\nserver:\n  listen: 0.0.0.0:9\n  log_level: warn\n",
        )
        .unwrap();
        let args = serve_args(&[
            "--config",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:5",
        ]);
        let config = args.resolve_config().unwrap();
        assert_eq!(config.server.listen, "127.0.0.1:5".parse().unwrap());
        if std::env::var_os("SIGHTLINE_DATA_DIR").is_none() {
            assert_eq!(config.data_dir, PathBuf::from("/from/file"));
        }
        assert_eq!(
            config.server.otlp_grpc_listen,
            "127.0.0.1:4317".parse().unwrap()
        );
    }

    #[test]
    fn enable_admin_api_flag() {
        if std::env::var_os("SIGHTLINE_ENABLE_ADMIN_API").is_none() {
            assert!(
                !serve_args(&[])
                    .apply(Config::default())
                    .server
                    .enable_admin_api
            );
        }
        let args = serve_args(&["--enable-admin-api"]);
        assert!(args.apply(Config::default()).server.enable_admin_api);
    }

    #[test]
    fn bad_flag_values_are_refused() {
        let argv = ["sightline", "serve", "--listen", "not-an-address"];
        assert!(Cli::try_parse_from(argv).is_err());
        let argv = ["sightline", "serve", "--log-format", "xml"];
        assert!(Cli::try_parse_from(argv).is_err());
    }

    #[test]
    fn config_check_parses() {
        let cli = Cli::try_parse_from(["sightline", "config", "check", "x.yaml"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Config(ConfigCommand::Check { .. })
        ));
    }
}
