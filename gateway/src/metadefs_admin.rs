//! `glint metadefs load DIR` and `glint metadefs export DIR`: Glance's metadef definition
//! files in and out of the metadata store, whether or not a server is running on it.
//!
//! Files are Glance's format (`etc/metadefs/*.json`, what `glance-manage db
//! load_metadefs/export_metadefs` read and write): one namespace per file, every `*.json` of a
//! folder, read in name order. All files are read and checked before anything is written, and
//! the whole load is one transaction: a bad file names itself and writes nothing.
//!
//! redb lets one process open the database. When no server holds it, the command opens it
//! itself. When one does (`Error::AlreadyOpen`), the command hands the work to that server
//! through its admin socket, `<data-dir>/admin.sock`: one JSON request line, one JSON answer
//! line. The server runs it on its own handle (one transaction, as above). The socket is
//! created mode 0600 inside the data folder: whoever may use it may already read and write
//! `meta.redb` directly, so it grants nothing new. A server started while a command holds the
//! database fails to open it and says so; start it again.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use meta::metadefs::Metadefs;
use meta::metadefs::{LoadMode, LoadReport, NamespaceDocument};
use meta::{RedbBackend, Timestamp};
use serde_json::{json, Value};

use crate::app::App;
use crate::config::Config;
use crate::handlers::metadefs::json::{self, Source};

/// The owner of loaded namespaces whose file names none (Glance's loader default).
pub const DEFAULT_OWNER: &str = "admin";
/// Longest wait for a running server to answer (a load of every Glance file takes well under
/// a second).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a load or export failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A definition file could not be read or is not a valid namespace.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The folder could not be listed or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The metadata store refused (a rule broken, storage failure).
    #[error("{0}")]
    Meta(#[from] meta::Error),
    /// The running server's answer.
    #[error("the running server refused: {0}")]
    Server(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AdminError {
    let what = what.into();
    move |source| AdminError::Io { what, source }
}

/// The admin socket of the server running on `config`'s data folder.
pub fn socket_path(config: &Config) -> PathBuf {
    config.data_dir.join("admin.sock")
}

/// Reads every `*.json` file of `dir` (or the one file `dir` names), in name order.
pub fn read_definitions(dir: &Path) -> Result<Vec<NamespaceDocument>, AdminError> {
    let files = if dir.is_file() {
        vec![dir.to_owned()]
    } else {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(format!("listing {}", dir.display())))? {
            let path = entry
                .map_err(io(format!("listing {}", dir.display())))?
                .path();
            if path.is_file() && path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
        files.sort();
        files
    };
    if files.is_empty() {
        return Err(AdminError::File {
            path: dir.to_owned(),
            reason: "no *.json definition files here".to_owned(),
        });
    }
    // Each file gets its own time (a microsecond apart, in name order), so that a namespace
    // list sorted by creation time has no ties to break by load order.
    let start = Timestamp::now().as_unix_micros();
    let mut seen = BTreeSet::new();
    let mut documents = Vec::with_capacity(files.len());
    for (index, path) in files.into_iter().enumerate() {
        let now = Timestamp::from_unix_micros(start + index as i64);
        let bad = |reason: String| AdminError::File {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let document = json::document_from_json(&value, Source::File, DEFAULT_OWNER, now)
            .map_err(|e| bad(e.0))?;
        document.validate().map_err(|e| bad(e.to_string()))?;
        if !seen.insert(document.namespace.namespace.clone()) {
            return Err(bad(format!(
                "namespace {} is defined by an earlier file too",
                document.namespace.namespace
            )));
        }
        documents.push(document);
    }
    // Oldest first: an export loads back in its creation order whatever its file names, and
    // resource types are created by the oldest namespace naming them, as they first were.
    documents.sort_by_key(|document| document.namespace.created_at);
    Ok(documents)
}

/// A file name for namespace `name`: its letters and digits, other runs as `-`.
fn file_stem(name: &str) -> String {
    let mut stem = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() {
            stem.push(c);
        } else if !stem.ends_with('-') {
            stem.push('-');
        }
    }
    let stem = stem.trim_matches('-');
    if stem.is_empty() {
        "namespace".to_owned()
    } else {
        stem.to_owned()
    }
}

/// Writes one file per namespace into `dir` (created if missing), each written to a temporary
/// name and renamed. Returns the files written.
pub fn write_definitions(
    dir: &Path,
    documents: &[NamespaceDocument],
) -> Result<Vec<PathBuf>, AdminError> {
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let mut taken = BTreeSet::new();
    let mut written = Vec::with_capacity(documents.len());
    for document in documents {
        let stem = file_stem(&document.namespace.namespace);
        let mut name = format!("{stem}.json");
        let mut n = 2;
        while !taken.insert(name.clone()) {
            name = format!("{stem}-{n}.json");
            n += 1;
        }
        let path = dir.join(&name);
        let temporary = dir.join(format!(".{name}.tmp"));
        let mut text = serde_json::to_string_pretty(&json::document_to_file(document))
            .map_err(|e| AdminError::Server(e.to_string()))?;
        text.push('\n');
        std::fs::write(&temporary, text).map_err(io(format!("writing {}", temporary.display())))?;
        std::fs::rename(&temporary, &path).map_err(io(format!("writing {}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}

/// What the command asks of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Load these namespaces.
    Load(Vec<NamespaceDocument>, LoadMode),
    /// Export every namespace.
    Export,
}

/// What the store answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// What a load did.
    Loaded(LoadReport),
    /// Every namespace, oldest first.
    Exported(Vec<NamespaceDocument>),
}

/// Runs `request` against the store of `config`: directly when no server holds it, else
/// through the running server's admin socket. Says which it did.
pub fn run(config: &Config, request: Request) -> Result<(Answer, Route), AdminError> {
    if let Some(database) = &config.database {
        // A shared database takes writers from every gateway and this command alike.
        let meta = meta::PgBackend::connect(&database.pg_options())?;
        return Ok((execute(&meta, request)?, Route::Database));
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(io(format!("creating {}", config.data_dir.display())))?;
    match RedbBackend::open(&config.meta_path()) {
        Ok(meta) => Ok((execute(&meta, request)?, Route::Direct)),
        Err(meta::Error::AlreadyOpen) => {
            let socket = socket_path(config);
            Ok((ask_server(&socket, &request)?, Route::Server(socket)))
        }
        Err(other) => Err(other.into()),
    }
}

/// How a request reached the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This process opened the database.
    Direct,
    /// The server on this admin socket ran it.
    Server(PathBuf),
    /// The shared database (`[database]`) took it directly.
    Database,
}

/// Runs `request` on a store this process opened.
pub fn execute(meta: &dyn Metadefs, request: Request) -> Result<Answer, AdminError> {
    Ok(match request {
        Request::Load(documents, mode) => Answer::Loaded(meta.load_metadefs(&documents, mode)?),
        Request::Export => Answer::Exported(meta.export_metadefs()?),
    })
}

fn mode_name(mode: LoadMode) -> &'static str {
    match mode {
        LoadMode::SkipExisting => "skip",
        LoadMode::Merge => "merge",
        LoadMode::MergePreferNew => "prefer_new",
        LoadMode::Overwrite => "overwrite",
    }
}

fn encode_request(request: &Request) -> Value {
    match request {
        Request::Load(documents, mode) => json!({
            "command": "load",
            "mode": mode_name(*mode),
            "namespaces": documents.iter().map(json::document_to_file).collect::<Vec<_>>(),
        }),
        Request::Export => json!({ "command": "export" }),
    }
}

fn decode_documents(value: Option<&Value>) -> Result<Vec<NamespaceDocument>, String> {
    let now = Timestamp::now();
    value
        .and_then(Value::as_array)
        .ok_or("namespaces missing")?
        .iter()
        .map(|v| json::document_from_json(v, Source::File, DEFAULT_OWNER, now).map_err(|e| e.0))
        .collect()
}

fn decode_request(value: &Value) -> Result<Request, String> {
    match value["command"].as_str() {
        Some("export") => Ok(Request::Export),
        Some("load") => {
            let mode = match value["mode"].as_str() {
                Some("skip") => LoadMode::SkipExisting,
                Some("merge") => LoadMode::Merge,
                Some("prefer_new") => LoadMode::MergePreferNew,
                Some("overwrite") => LoadMode::Overwrite,
                other => return Err(format!("unknown load mode {other:?}")),
            };
            Ok(Request::Load(
                decode_documents(value.get("namespaces"))?,
                mode,
            ))
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

fn encode_answer(answer: &Answer) -> Value {
    match answer {
        Answer::Loaded(report) => json!({
            "ok": true,
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
        }),
        Answer::Exported(documents) => json!({
            "ok": true,
            "namespaces": documents.iter().map(json::document_to_file).collect::<Vec<_>>(),
        }),
    }
}

fn ask_server(socket: &Path, request: &Request) -> Result<Answer, AdminError> {
    let unreachable = |e: std::io::Error| AdminError::Io {
        what: format!(
            "the metadata database is open in another process (a running glint?), and its \
             admin socket {} does not answer",
            socket.display()
        ),
        source: e,
    };
    let mut stream = UnixStream::connect(socket).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(unreachable)?;
    let mut line = encode_request(request).to_string();
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(unreachable)?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(unreachable)?;
    let value: Value = serde_json::from_str(&answer)
        .map_err(|e| AdminError::Server(format!("unreadable answer: {e}")))?;
    if value["ok"] != json!(true) {
        return Err(AdminError::Server(
            value["error"]
                .as_str()
                .unwrap_or("no reason given")
                .to_owned(),
        ));
    }
    let names = |key: &str| -> Vec<String> {
        value[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(match request {
        Request::Load(..) => Answer::Loaded(LoadReport {
            created: names("created"),
            updated: names("updated"),
            unchanged: names("unchanged"),
        }),
        Request::Export => {
            Answer::Exported(decode_documents(value.get("namespaces")).map_err(AdminError::Server)?)
        }
    })
}

/// Serves the admin socket of a running server on a thread of its own, one connection at a
/// time (loads are rare and short). A stale socket file from an earlier run is replaced: the
/// caller holds the database, so no other server uses this folder.
pub fn serve(app: std::sync::Arc<App>) -> std::io::Result<()> {
    let path = socket_path(&app.config);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    std::thread::Builder::new()
        .name("glint-admin".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => {
                        if let Err(e) = answer(&app, stream) {
                            tracing::warn!(error = %e, "admin socket: request failed");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "admin socket: accept failed"),
                }
            }
        })?;
    Ok(())
}

fn answer(app: &App, stream: UnixStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let outcome = serde_json::from_str::<Value>(&line)
        .map_err(|e| format!("unreadable request: {e}"))
        .and_then(|value| decode_request(&value))
        .and_then(|request| {
            let what = match &request {
                Request::Load(documents, mode) => {
                    format!(
                        "load of {} namespaces ({})",
                        documents.len(),
                        mode_name(*mode)
                    )
                }
                Request::Export => "export".to_owned(),
            };
            // Through the catalog: a load is a write, and runs on the writer thread.
            let answer = match request {
                Request::Load(documents, mode) => app
                    .catalog
                    .load_metadefs_blocking(documents, mode)
                    .map(Answer::Loaded),
                Request::Export => app.catalog.export_metadefs_blocking().map(Answer::Exported),
            }
            .map_err(|e| e.to_string())?;
            tracing::info!("admin socket: metadefs {what} done");
            Ok(answer)
        });
    let reply = match outcome {
        Ok(answer) => encode_answer(&answer),
        Err(error) => json!({ "ok": false, "error": error }),
    };
    let mut out = reply.to_string();
    out.push('\n');
    (&stream).write_all(out.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_keep_letters_and_digits() {
        assert_eq!(file_stem("OS::Compute::Libvirt"), "OS-Compute-Libvirt");
        assert_eq!(file_stem("::"), "namespace");
        assert_eq!(
            file_stem("CIM::ProcessorAllocationSettingData"),
            "CIM-ProcessorAllocationSettingData"
        );
    }

    #[test]
    fn export_then_read_round_trips_and_names_clash_safely() {
        let dir = tempfile::tempdir().unwrap();
        let text = |ns: &str| {
            json!({"namespace": ns, "visibility": "public", "owner": "p",
                   "properties": {"a": {"title": "A", "type": "string"}},
                   "tags": [{"name": "t"}]})
        };
        let now = Timestamp::now();
        let documents: Vec<NamespaceDocument> = ["a:b", "a_b", "a b"]
            .iter()
            .map(|ns| json::document_from_json(&text(ns), Source::File, "admin", now).unwrap())
            .collect();
        let written = write_definitions(dir.path(), &documents).unwrap();
        assert_eq!(written.len(), 3);
        let mut read = read_definitions(dir.path()).unwrap();
        read.sort_by(|a, b| a.namespace.namespace.cmp(&b.namespace.namespace));
        let mut expected = documents.clone();
        expected.sort_by(|a, b| a.namespace.namespace.cmp(&b.namespace.namespace));
        assert_eq!(read, expected);
    }

    #[test]
    fn a_bad_file_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("good.json"), r#"{"namespace": "n"}"#).unwrap();
        std::fs::write(
            dir.path().join("bad.json"),
            r#"{"namespace": "m", "properties": {"p": {"title": "P"}}}"#,
        )
        .unwrap();
        let err = read_definitions(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("bad.json") && err.contains("'type' is a required"),
            "{err}"
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(read_definitions(empty.path()).is_err());
    }

    #[test]
    fn requests_and_answers_survive_the_socket_encoding() {
        let document = json::document_from_json(
            &json!({"namespace": "n", "objects": [{"name": "o"}]}),
            Source::File,
            "admin",
            Timestamp::now(),
        )
        .unwrap();
        let request = Request::Load(vec![document], LoadMode::MergePreferNew);
        assert_eq!(decode_request(&encode_request(&request)).unwrap(), request);
        assert_eq!(
            decode_request(&encode_request(&Request::Export)).unwrap(),
            Request::Export
        );
        assert!(decode_request(&json!({"command": "drop"})).is_err());
    }
}
