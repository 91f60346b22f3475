//! Glance's `[database] connection`: an SQLAlchemy URL, `dialect[+driver]://user:password@host
//! [:port]/database[?key=value&…]`, read into what glint's database clients need.
//!
//! `sqlite:///relative/path` and `sqlite:////absolute/path` (SQLAlchemy's three and four
//! slashes); `mysql://`, `mysql+pymysql://`, `mysql+mysqldb://` and `mariadb…://` for MySQL and
//! MariaDB, with `unix_socket=` and `charset=` in the query. The password is a [`Secret`]: it
//! never appears in [`DatabaseUrl`]'s `Display` or `Debug`.

use std::fmt;
use std::path::PathBuf;

use crate::config::Secret;

/// Where a Glance database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file.
    Sqlite {
        /// The file.
        path: PathBuf,
    },
    /// A MySQL or MariaDB database.
    Mysql {
        /// The user.
        user: String,
        /// Its password (empty for none).
        password: Secret,
        /// The server's host name or address (`localhost` with a socket).
        host: String,
        /// The TCP port.
        port: u16,
        /// The database.
        database: String,
        /// A Unix socket to connect through instead of TCP.
        socket: Option<PathBuf>,
    },
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite { path } => write!(f, "sqlite:///{}", path.display()),
            DatabaseUrl::Mysql {
                user,
                password,
                host,
                port,
                database,
                socket,
            } => {
                let secret = if password.is_empty() {
                    String::new()
                } else {
                    format!(":{password}")
                };
                write!(f, "mysql://{user}{secret}@{host}:{port}/{database}")?;
                if let Some(socket) = socket {
                    write!(f, "?unix_socket={}", socket.display())?;
                }
                Ok(())
            }
        }
    }
}

/// Percent-decodes `text` (SQLAlchemy URL-encodes user names and passwords).
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a bad %-escape")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8 once %-decoded".to_owned())
}

impl DatabaseUrl {
    /// Parses an SQLAlchemy URL. Errors never quote the URL (it may hold a password).
    pub fn parse(url: &str) -> Result<DatabaseUrl, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("not a database URL (dialect://…)")?;
        let dialect = scheme.split('+').next().unwrap_or("");
        match dialect {
            "sqlite" => {
                // sqlite:///path: the path follows the third slash (so a fourth makes it
                // absolute).
                let path = rest.split('?').next().unwrap_or("");
                let path = path
                    .strip_prefix('/')
                    .filter(|p| !p.is_empty())
                    .ok_or("an in-memory SQLite database has no images to migrate")?;
                Ok(DatabaseUrl::Sqlite {
                    path: PathBuf::from(decode(path)?),
                })
            }
            "mysql" | "mariadb" => {
                let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
                let (authority, database) = main.split_once('/').unwrap_or((main, ""));
                let (credentials, hostport) = match authority.rsplit_once('@') {
                    Some((c, h)) => (Some(c), h),
                    None => (None, authority),
                };
                let (user, password) = match credentials {
                    Some(c) => match c.split_once(':') {
                        Some((u, p)) => (decode(u)?, decode(p)?),
                        None => (decode(c)?, String::new()),
                    },
                    None => (String::new(), String::new()),
                };
                let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
                    let (h, tail) = bracketed.split_once(']').ok_or("a bad IPv6 host")?;
                    (h.to_owned(), tail.strip_prefix(':'))
                } else {
                    match hostport.rsplit_once(':') {
                        Some((h, p)) => (h.to_owned(), Some(p)),
                        None => (hostport.to_owned(), None),
                    }
                };
                let port = match port {
                    Some(p) => p.parse().map_err(|_| "a bad port")?,
                    None => 3306,
                };
                let mut socket = None;
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if key == "unix_socket" {
                        socket = Some(PathBuf::from(decode(value)?));
                    }
                }
                if database.is_empty() {
                    return Err("no database name".into());
                }
                Ok(DatabaseUrl::Mysql {
                    user,
                    password: Secret::new(password),
                    host: if host.is_empty() {
                        "localhost".into()
                    } else {
                        host
                    },
                    port,
                    database: decode(database)?,
                    socket,
                })
            }
            "postgresql" | "postgres" => Err(
                "a PostgreSQL Glance database is not supported (SQLite, MySQL, MariaDB are)".into(),
            ),
            _ => Err(format!("the database kind {dialect:?} is not supported")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlalchemy_urls() {
        assert_eq!(
            DatabaseUrl::parse("sqlite:////var/lib/glance/glance.sqlite").unwrap(),
            DatabaseUrl::Sqlite {
                path: "/var/lib/glance/glance.sqlite".into()
            }
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///glance.sqlite").unwrap(),
            DatabaseUrl::Sqlite {
                path: "glance.sqlite".into()
            }
        );
        let url = DatabaseUrl::parse(
            "mysql+pymysql://glance:p%40ss%3Aword@controller/glance?charset=utf8",
        )
        .unwrap();
        let DatabaseUrl::Mysql {
            user,
            password,
            host,
            port,
            database,
            socket,
        } = &url
        else {
            panic!("{url}")
        };
        assert_eq!(
            (
                user.as_str(),
                password.expose(),
                host.as_str(),
                *port,
                database.as_str()
            ),
            ("glance", "p@ss:word", "controller", 3306, "glance")
        );
        assert_eq!(socket, &None);
        assert_eq!(url.to_string(), "mysql://glance:***@controller:3306/glance");
        assert!(!format!("{url:?}").contains("p@ss"));
        let url = DatabaseUrl::parse("mysql://g@[::1]:3307/db?unix_socket=/run/mysqld/mysqld.sock")
            .unwrap();
        assert!(
            matches!(&url, DatabaseUrl::Mysql { host, port: 3307, socket: Some(_), .. } if host == "::1")
        );
        for bad in [
            "glance.sqlite",
            "sqlite://",
            "postgresql://u:secret@h/db",
            "oracle://u:secret@h/db",
            "mysql://u:secret@h:port/db",
            "mysql://u:secret@h/",
        ] {
            let err = DatabaseUrl::parse(bad).unwrap_err();
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
