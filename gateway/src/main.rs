//! The `glint` binary: flags → `Config` → the chosen subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gateway::config::{Config, LogFormat};

/// glint: an OpenStack Image service (Image API v2).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeFlags,
}

#[derive(clap::Args, Default, Clone)]
struct ServeFlags {
    /// Address to listen on (default 127.0.0.1:9292; port 0 picks a free port).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Data folder (default ./glint-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Log format: text (the default) or json, one object per line.
    #[arg(long, value_parser = ["text", "json"])]
    log_format: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Image API (the default).
    Serve(ServeFlags),
    /// Inspect a disk image file: format, virtual size, and whether an upload is safe.
    Inspect {
        /// Judge the file as an upload declared with this disk_format.
        #[arg(long)]
        disk_format: Option<String>,
        /// The image file.
        file: PathBuf,
    },
    /// Print the effective configuration and exit.
    CheckConfig,
    /// Metadata database administration.
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
}

#[derive(Subcommand)]
enum DbAction {
    /// Bring the database schema up to date (PostgreSQL: apply the missing migrations; redb:
    /// open the file, which migrates it). Safe to run from several gateways at once.
    Sync,
}

fn load_config(cli_config: Option<&PathBuf>, flags: &ServeFlags) -> anyhow::Result<Config> {
    let mut config = Config::load(cli_config.map(PathBuf::as_path), std::env::vars())?;
    if let Some(listen) = flags.listen {
        config.listen = listen;
    }
    if let Some(dir) = &flags.data_dir {
        config.data_dir = dir.clone();
    }
    match flags.log_format.as_deref() {
        Some("json") => config.log_format = LogFormat::Json,
        Some(_) => config.log_format = LogFormat::Text,
        None => {}
    }
    config.validate()?;
    Ok(config)
}

fn init_logs(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("glint: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        None => serve(cli.config.as_ref(), &cli.serve),
        Some(Command::Serve(flags)) => serve(cli.config.as_ref(), &flags),
        Some(Command::Inspect { disk_format, file }) => inspect(disk_format.as_deref(), &file),
        Some(Command::Db {
            action: DbAction::Sync,
        }) => {
            let config = load_config(cli.config.as_ref(), &cli.serve)?;
            db_sync(&config)
        }
        Some(Command::CheckConfig) => {
            let config = load_config(cli.config.as_ref(), &cli.serve)?;
            print!(
                "{}",
                toml::to_string_pretty(&config).context("rendering config")?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `glint db sync`: prints what it did.
fn db_sync(config: &Config) -> anyhow::Result<ExitCode> {
    match &config.database {
        Some(database) => {
            let report = meta::PgBackend::sync(&database.pg_options())
                .with_context(|| format!("migrating {}", meta::redact_url(&database.connection)))?;
            println!(
                "database schema at version {} (was {})",
                report.to, report.from
            );
        }
        None => {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("creating {}", config.data_dir.display()))?;
            let path = config.meta_path();
            let backend = meta::RedbBackend::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            println!(
                "{} at schema version {}",
                path.display(),
                meta::Backend::schema_version(&backend)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn serve(config_path: Option<&PathBuf>, flags: &ServeFlags) -> anyhow::Result<ExitCode> {
    let config = load_config(config_path, flags)?;
    init_logs(&config);
    let (path, flags) = (config_path.cloned(), flags.clone());
    let reload: gateway::serve::Reload =
        Box::new(move || load_config(path.as_ref(), &flags).map_err(|e| format!("{e:#}")));
    gateway::serve::serve(config, Some(reload))?;
    Ok(ExitCode::SUCCESS)
}

/// Inspects a file with the same incremental inspector uploads use, and prints one JSON
/// object. Exit 0 when safe, 1 when an upload must be refused.
///
/// A regular file is read only where the inspector asks ([`formats::Inspector::next_read`]:
/// the headers, the tables it checks, the last 1.5 KiB), so a 10 GiB disk costs a few dozen
/// KiB of reads; anything else (a pipe, a device) is read whole, in 1 MiB pieces. The output
/// says how many bytes were read and whether that was the whole stream.
fn inspect(disk_format: Option<&str>, path: &PathBuf) -> anyhow::Result<ExitCode> {
    use std::io::Read;
    use std::os::unix::fs::FileExt;
    let policy = Config::default().format_policy();
    let mut inspector = formats::Inspector::new(disk_format, &policy);
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let metadata = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut refused = None;
    let mut bytes_read: u64 = 0;
    let whole_stream_read;
    if metadata.is_file() {
        let len = metadata.len();
        while let Some(range) = inspector.next_read(len) {
            inspector
                .skip_to(range.start, len)
                .context("the inspector asked for a range it cannot skip to")?;
            let want =
                usize::try_from(range.end - range.start).map_or(buf.len(), |n| n.min(buf.len()));
            let n = file
                .read_at(&mut buf[..want], range.start)
                .with_context(|| format!("reading {}", path.display()))?;
            anyhow::ensure!(n > 0, "{} shrank while it was inspected", path.display());
            bytes_read += n as u64;
            if let Err(refusal) = inspector.feed(&buf[..n]) {
                refused = Some(refusal);
                break;
            }
        }
        inspector
            .skip_to(len, len)
            .context("the inspector still wanted bytes at the end")?;
        let now = file.metadata().map(|m| m.len()).unwrap_or(len);
        anyhow::ensure!(
            now == len,
            "{} changed size while it was inspected",
            path.display()
        );
        whole_stream_read = bytes_read == len;
    } else {
        loop {
            let n = file
                .read(&mut buf)
                .with_context(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            bytes_read += n as u64;
            if let Err(refusal) = inspector.feed(&buf[..n]) {
                refused = Some(refusal);
                break;
            }
        }
        whole_stream_read = refused.is_none();
    }
    let inspection = inspector.finish();
    let verdict = match refused {
        Some(refusal) => Err(refusal),
        None => inspection.verdict.clone(),
    };
    let out = serde_json::json!({
        "format": inspection.format.to_string(),
        "virtual_size": inspection.virtual_size,
        "safe": verdict.is_ok(),
        "reason": verdict.as_ref().err().map(|r| r.to_string()),
        "bytes_read": bytes_read,
        "whole_stream_read": whole_stream_read,
    });
    println!("{out}");
    Ok(if verdict.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
