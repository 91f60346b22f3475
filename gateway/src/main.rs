//! The `glint` binary: flags → `Config` → the chosen subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gateway::config::{Config, GlanceReport, LogFormat, Verdict};

/// glint: an OpenStack Image service (Image API v2).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Glance's configuration file (glance-api.conf), read as Glance reads it; the TOML file's
    /// keys override it.
    #[arg(long, global = true)]
    glance_config: Option<PathBuf>,
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
    /// Take over a Glance deployment: its images (same ids, statuses, checksums, timestamps),
    /// members, tags and properties into glint's metadata, the image data adopted where it
    /// lies or copied. Needs --glance-config (for its `[database] connection`) or --database; glint
    /// must not be serving from the same data folder meanwhile.
    MigrateFromGlance {
        /// Glance's database (an SQLAlchemy URL: sqlite:////path, mysql+pymysql://…);
        /// default: the `[database] connection` of --glance-config.
        #[arg(long)]
        database: Option<String>,
        /// Copy the image data into this glint store (any configured file or s3 store: `file`
        /// without a `[stores]` table) instead of adopting it in place.
        #[arg(long)]
        copy_to: Option<String>,
        /// Read every image's data again and check its size, md5 and os_hash_value.
        #[arg(long)]
        verify: bool,
        /// Print what would be done, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Replace images glint holds with other values (default: report and leave them).
        #[arg(long)]
        overwrite: bool,
        #[command(flatten)]
        flags: ServeFlags,
    },
    /// Metadata definitions: load or export Glance's definition files (as `glance-manage db
    /// load_metadefs` / `export_metadefs`). Safe while a server runs on the same data: the
    /// work then goes through that server's admin socket.
    Metadefs {
        /// Data folder (default ./glint-data), as for `serve`.
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        command: MetadefsCommand,
    },
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

#[derive(Subcommand)]
enum MetadefsCommand {
    /// Load every *.json namespace file of DIR (or the one file DIR names); all or nothing.
    Load {
        /// The folder of definition files, e.g. Glance's etc/metadefs.
        dir: PathBuf,
        /// Also load into namespaces that exist: add what they lack.
        #[arg(long)]
        merge: bool,
        /// With --merge: replace what differs with the file's version.
        #[arg(long, alias = "prefer_new")]
        prefer_new: bool,
        /// With --merge: replace existing namespaces (and all they hold) with the files'.
        #[arg(long)]
        overwrite: bool,
    },
    /// Write every namespace to DIR, one JSON file each.
    Export {
        /// The folder to write (created if missing).
        dir: PathBuf,
    },
}

/// The configuration files named on the command line.
struct Files<'a> {
    toml: Option<&'a PathBuf>,
    glance: Option<&'a PathBuf>,
}

fn load_config(
    files: &Files<'_>,
    flags: &ServeFlags,
) -> anyhow::Result<(Config, Option<GlanceReport>)> {
    let (mut config, report) = Config::load_with_glance(
        files.glance.map(PathBuf::as_path),
        files.toml.map(PathBuf::as_path),
        std::env::vars(),
    )?;
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
    Ok((config, report))
}

/// Logs, once, every option of the Glance file that glint did not take: a warning for each
/// one whose value glint does not honour, an info line for the rest.
fn log_glance_report(report: &GlanceReport) {
    let mapped = report.options.len() - report.not_taken().count();
    tracing::info!(
        file = %report.path.display(),
        options = report.options.len(),
        mapped,
        "read Glance's configuration"
    );
    for option in report.not_taken() {
        match option.verdict {
            Verdict::Unsupported(_) => tracing::warn!("glance-api.conf: {option}"),
            _ => tracing::info!("glance-api.conf: {option}"),
        }
    }
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
    let files = Files {
        toml: cli.config.as_ref(),
        glance: cli.glance_config.as_ref(),
    };
    match cli.command {
        None => serve(&files, &cli.serve),
        Some(Command::Serve(flags)) => serve(&files, &flags),
        Some(Command::Inspect { disk_format, file }) => inspect(disk_format.as_deref(), &file),
        Some(Command::Db {
            action: DbAction::Sync,
        }) => {
            let (config, _) = load_config(&files, &cli.serve)?;
            db_sync(&config)
        }
        Some(Command::MigrateFromGlance {
            database,
            copy_to,
            verify,
            dry_run,
            overwrite,
            flags,
        }) => {
            let (config, _) = load_config(&files, &flags)?;
            let database = match (database, files.glance) {
                (Some(url), _) => gateway::config::Secret::new(url),
                (None, Some(path)) => gateway::config::glance::database_connection(path)?
                    .with_context(|| {
                        format!(
                            "{} has no [database] connection: give --database",
                            path.display()
                        )
                    })?,
                (None, None) => anyhow::bail!("give --glance-config (or --database)"),
            };
            let options = gateway::migrate::Options {
                database,
                copy_to,
                verify,
                dry_run,
                overwrite,
            };
            let summary = gateway::migrate::run(&config, &options, &mut std::io::stdout())?;
            Ok(if summary.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Some(Command::Metadefs { data_dir, command }) => {
            let mut flags = cli.serve.clone();
            if data_dir.is_some() {
                flags.data_dir = data_dir;
            }
            let (config, _) = load_config(&files, &flags)?;
            metadefs(&config, command)
        }
        Some(Command::CheckConfig) => {
            let (config, report) = load_config(&files, &cli.serve)?;
            if let Some(report) = report {
                // As comments, so that the output stays a valid TOML file.
                println!("# from {}:", report.path.display());
                for option in &report.options {
                    println!("#   {option}");
                }
            }
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

fn serve(files: &Files<'_>, flags: &ServeFlags) -> anyhow::Result<ExitCode> {
    let (config, report) = load_config(files, flags)?;
    init_logs(&config);
    if let Some(report) = &report {
        log_glance_report(report);
    }
    let (toml, glance, flags) = (files.toml.cloned(), files.glance.cloned(), flags.clone());
    let reload: gateway::serve::Reload = Box::new(move || {
        let files = Files {
            toml: toml.as_ref(),
            glance: glance.as_ref(),
        };
        load_config(&files, &flags)
            .map(|(config, _)| config)
            .map_err(|e| format!("{e:#}"))
    });
    gateway::serve::serve(config, Some(reload))?;
    Ok(ExitCode::SUCCESS)
}

/// `glint metadefs load|export`: the files are read (or written) here; the store is reached
/// directly or through the running server's admin socket.
fn metadefs(config: &Config, command: MetadefsCommand) -> anyhow::Result<ExitCode> {
    use gateway::metadefs_admin::{self as admin, Answer, Request, Route};
    use meta::metadefs::LoadMode;
    let (request, dir) = match command {
        MetadefsCommand::Load {
            dir,
            merge,
            prefer_new,
            overwrite,
        } => {
            let mode = match (merge, prefer_new, overwrite) {
                (_, true, true) => {
                    anyhow::bail!("give at most one of --prefer-new and --overwrite")
                }
                (false, true, _) | (false, _, true) => {
                    anyhow::bail!("--prefer-new and --overwrite need --merge")
                }
                (false, false, false) => LoadMode::SkipExisting,
                (true, false, false) => LoadMode::Merge,
                (true, true, false) => LoadMode::MergePreferNew,
                (true, false, true) => LoadMode::Overwrite,
            };
            let documents = admin::read_definitions(&dir)?;
            (Request::Load(documents, mode), dir)
        }
        MetadefsCommand::Export { dir } => (Request::Export, dir),
    };
    let (answer, route) = admin::run(config, request)?;
    let via = match route {
        Route::Direct => format!("{}", config.meta_path().display()),
        Route::Server(socket) => format!("the running server ({})", socket.display()),
        Route::Database => config
            .database
            .as_ref()
            .map_or_else(String::new, |database| {
                format!("the database {}", meta::redact_url(&database.connection))
            }),
    };
    match answer {
        Answer::Loaded(report) => {
            for (what, names) in [
                ("created", &report.created),
                ("updated", &report.updated),
                ("unchanged", &report.unchanged),
            ] {
                for name in names {
                    println!("{what} {name}");
                }
            }
            println!(
                "loaded {} from {} into {via}: {} created, {} updated, {} unchanged",
                report.created.len() + report.updated.len() + report.unchanged.len(),
                dir.display(),
                report.created.len(),
                report.updated.len(),
                report.unchanged.len()
            );
        }
        Answer::Exported(documents) => {
            let written = admin::write_definitions(&dir, &documents)?;
            for path in &written {
                println!("wrote {}", path.display());
            }
            println!(
                "exported {} namespaces from {via} to {}",
                written.len(),
                dir.display()
            );
        }
    }
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
